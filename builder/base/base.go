// Package base builds sailmaker's internal base images from Debian packages
// with mmdebstrap, and the Go builder images from the golang.org/toolchain
// module, reproducibly: with a fixed SOURCE_DATE_EPOCH and the same package
// versions, two builds give the same digest.
package base

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/internal/tail"
)

// Spec is what one base image is made of.
type Spec struct {
	Name            string // repository, e.g. base/bookworm
	Version         string // tag
	Suite           string
	Variant         string
	Packages        []string
	SourceDateEpoch int64
	Users           []User
	Sudoers         []string
	GoVersion       string // empty: no Go toolchain
	Env             map[string]string
	Labels          map[string]string
	// RecipeDigest identifies the recipe file the spec came from.
	RecipeDigest string
}

// User is an account the image gets.
type User struct {
	Name string
	UID  int
}

// Options say where packages and toolchains come from.
type Options struct {
	// Mirror is a Debian mirror URL; empty uses this machine's apt sources.
	Mirror string
	// GoProxy and GoSumDB are passed to `go mod download`; empty: go env's.
	GoProxy string
	GoSumDB string
	// WorkDir holds the rootfs tarball and layers while building; CacheDir
	// keeps downloaded Go toolchain modules between builds.
	WorkDir  string
	CacheDir string
	Log      logrus.FieldLogger
}

// Result says what went into the image.
type Result struct {
	Image    v1.Image
	Packages []string // name=version, sorted
	GoSum    string   // the toolchain module's h1: hash, checked by the checksum database

	work string
}

// Close removes the layer files Image reads from.
func (r *Result) Close() error { return os.RemoveAll(r.work) }

// Labels sailmaker sets on base images.
const (
	LabelPackages     = "dev.sailmaker.packages"
	LabelRecipe       = "dev.sailmaker.recipe"
	LabelRecipeDigest = "dev.sailmaker.recipe.digest"
	LabelGoVersion    = "dev.sailmaker.go.version"
	LabelGoSum        = "dev.sailmaker.go.module.sum"
	LabelSuite        = "dev.sailmaker.debian.suite"
)

// Preflight says what is missing for building base images.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("building base images runs mmdebstrap as root: run this as root (for example `sudo make demo`)")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return errors.New("mmdebstrap is missing: install it with `apt-get install mmdebstrap` (make demo does this)")
	}
	return nil
}

// Build makes the image. It runs mmdebstrap (and `go mod download` for the
// toolchain) outside any container; nothing is pulled from an image registry.
func Build(ctx context.Context, s Spec, o Options) (*Result, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	if o.WorkDir != "" {
		if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating work directory: %w", err)
		}
	}
	work, err := os.MkdirTemp(o.WorkDir, "base-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(work)
		}
	}()

	log := o.Log.WithField("image", s.Name+":"+s.Version)
	log.WithFields(logrus.Fields{"suite": s.Suite, "packages": strings.Join(s.Packages, ",")}).Info("building root filesystem with mmdebstrap")
	start := time.Now()
	rawTar := filepath.Join(work, "rootfs.tar")
	defer os.Remove(rawTar)
	pkgFile := filepath.Join(work, "packages.txt")
	if err := mmdebstrap(ctx, s, o, rawTar, pkgFile); err != nil {
		return nil, err
	}
	log.WithField("took", time.Since(start).Round(time.Second)).Info("root filesystem ready")

	epoch := time.Unix(s.SourceDateEpoch, 0).UTC()
	rootfs, err := normalizedLayer(rawTar, filepath.Join(work, "rootfs.tar.gz"), epoch)
	if err != nil {
		return nil, fmt.Errorf("packing root filesystem: %w", err)
	}
	pkgs, err := readLines(pkgFile)
	if err != nil {
		return nil, fmt.Errorf("reading package list: %w", err)
	}
	sort.Strings(pkgs)

	layers := []mutate.Addendum{{
		Layer:     rootfs,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "mmdebstrap --variant=" + s.Variant + " " + s.Suite, Comment: "sailmaker base " + s.Name},
	}}
	res := &Result{Packages: pkgs}
	if s.GoVersion != "" {
		log.WithField("go", s.GoVersion).Info("fetching Go toolchain module")
		goLayer, sum, err := goToolchainLayer(ctx, s.GoVersion, o, filepath.Join(work, "go.tar.gz"), epoch)
		if err != nil {
			return nil, err
		}
		res.GoSum = sum
		layers = append(layers, mutate.Addendum{
			Layer:     goLayer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "golang.org/toolchain@" + toolchainVersion(s.GoVersion), Comment: "Go " + s.GoVersion},
		})
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = env(s)
	cf.Config.Labels = labels(s, res, epoch)
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	res.Image = img
	res.work = work
	ok = true
	return res, nil
}

func env(s Spec) []string {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	vars := map[string]string{}
	if s.GoVersion != "" {
		path = "/usr/local/go/bin:" + path
		vars["GOTOOLCHAIN"] = "local"
		vars["GOROOT"] = "/usr/local/go"
	}
	for k, v := range s.Env {
		vars[k] = v
	}
	vars["PATH"] = path
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func labels(s Spec, r *Result, epoch time.Time) map[string]string {
	l := map[string]string{}
	for k, v := range s.Labels {
		l[k] = v
	}
	l["org.opencontainers.image.created"] = epoch.Format(time.RFC3339)
	l["org.opencontainers.image.version"] = s.Version
	l["org.opencontainers.image.title"] = s.Name
	l["org.opencontainers.image.source"] = "debian:" + s.Suite
	l[LabelRecipe] = s.Name
	l[LabelSuite] = s.Suite
	l[LabelPackages] = strings.Join(r.Packages, ",")
	if s.RecipeDigest != "" {
		l[LabelRecipeDigest] = s.RecipeDigest
	}
	if s.GoVersion != "" {
		l[LabelGoVersion] = s.GoVersion
		l[LabelGoSum] = r.GoSum
	}
	return l
}

// mmdebstrap writes the root filesystem as a tarball and the package list.
func mmdebstrap(ctx context.Context, s Spec, o Options, out, pkgFile string) error {
	args := []string{
		"--mode=root",
		"--variant=" + s.Variant,
		"--format=tar",
		"--skip=output/dev",
	}
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	for _, u := range s.Users {
		args = append(args, fmt.Sprintf(`--customize-hook=chroot "$1" useradd --create-home --uid %d --user-group --shell /bin/sh %s`, u.UID, shellQuote(u.Name)))
	}
	if len(s.Sudoers) > 0 {
		var b strings.Builder
		for _, l := range s.Sudoers {
			b.WriteString(l + "\n")
		}
		args = append(args,
			`--customize-hook=mkdir -p "$1/etc/sudoers.d" && printf '%s' `+shellQuote(b.String())+` > "$1/etc/sudoers.d/sailmaker" && chmod 0440 "$1/etc/sudoers.d/sailmaker"`,
			`--customize-hook=chroot "$1" visudo -c -f /etc/sudoers.d/sailmaker`)
	}
	args = append(args,
		`--customize-hook=chroot "$1" dpkg-query -W -f='${Package}=${Version}\n' > `+shellQuote(pkgFile),
		// Logs and caches that differ between runs.
		`--customize-hook=rm -rf "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/cache/ldconfig/aux-cache "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old`,
		s.Suite, out)
	mirrors, err := mirrorArgs(o.Mirror)
	if err != nil {
		return err
	}
	args = append(args, mirrors...)

	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", s.SourceDateEpoch), "LC_ALL=C.UTF-8")
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := tail.Lines(stderr.String(), 20)
		if strings.Contains(msg, "Temporary failure resolving") || strings.Contains(msg, "Could not connect") || strings.Contains(msg, "Failed to fetch") {
			return fmt.Errorf("mmdebstrap could not reach the Debian mirror (set debian.mirror in the config or SAILMAKER_DEBIAN_MIRROR): %w\n%s", err, msg)
		}
		if strings.Contains(msg, "No space left on device") {
			return fmt.Errorf("mmdebstrap ran out of disk space in %s: free some space or set --state-dir elsewhere: %w", filepath.Dir(out), err)
		}
		return fmt.Errorf("mmdebstrap failed: %w\n%s", err, msg)
	}
	return nil
}

// mirrorArgs turns the configured mirror into mmdebstrap's mirror arguments.
// With none configured it hands over this machine's apt sources files that
// serve Debian itself, as apt uses them.
func mirrorArgs(mirror string) ([]string, error) {
	if mirror != "" {
		return []string{mirror}, nil
	}
	var files []string
	if fi, err := os.Stat("/etc/apt/sources.list"); err == nil && fi.Size() > 0 {
		files = append(files, "/etc/apt/sources.list")
	}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "/debian") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no Debian mirror: this machine has no apt sources for Debian; set debian.mirror in the config or SAILMAKER_DEBIAN_MIRROR")
	}
	return out, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}
