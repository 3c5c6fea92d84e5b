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
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

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
	// Platforms to build (os/arch); empty means linux/amd64. More than
	// one gives an OCI image index.
	Platforms    []string
	Users        []User
	Sudoers      []string
	Alternatives []Alternative
	// Distroless, if set, makes an image of selected files of the
	// extracted packages instead of an installed Debian system.
	Distroless *Distroless
	GoVersion  string // empty: no Go toolchain
	Env        map[string]string
	Labels     map[string]string
	User       string // image config USER
	Workdir    string // image config WORKDIR
	// RecipeDigest identifies the recipe file the spec came from.
	RecipeDigest string
}

// User is an account the image gets.
type User struct {
	Name string
	UID  int
	Home string // empty: /home/NAME; /nonexistent: not created
}

// HomeDir is u's home directory.
func (u User) HomeDir() string {
	if u.Home != "" {
		return u.Home
	}
	return "/home/" + u.Name
}

// Alternative is one `update-alternatives --set Name Path`.
type Alternative struct {
	Name, Path string
}

// Distroless selects what a distroless image holds (see recipes.Distroless).
type Distroless struct {
	Files          []string
	Links          map[string]string
	Dirs           map[string]uint32
	CACertificates bool
}

// PlatformList is s's platforms, linux/amd64 when none are given.
func (s Spec) PlatformList() []string {
	if len(s.Platforms) == 0 {
		return []string{"linux/amd64"}
	}
	return s.Platforms
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

// Revision changes when this package builds different images from the
// same recipe; caches of built bases are keyed by it and the recipe.
const Revision = "3"

// Artifact is a built base: one image, or an index of one image per
// platform.
type Artifact struct {
	Image v1.Image      // a single-platform base
	Index v1.ImageIndex // a multi-platform base (Image is nil)
}

// Digest is the digest the base's tag names.
func (a Artifact) Digest() (v1.Hash, error) {
	if a.Index != nil {
		return a.Index.Digest()
	}
	if a.Image == nil {
		return v1.Hash{}, errors.New("empty base artifact")
	}
	return a.Image.Digest()
}

// Result says what went into the image.
type Result struct {
	Artifact
	// Platforms are the images built, one per platform, in the spec's order.
	Platforms []PlatformResult
	Packages  []string // of the first platform: name=version, sorted
	GoSum     string   // the toolchain module's h1: hash, checked by the checksum database

	work string
}

// PlatformResult is the image of one platform.
type PlatformResult struct {
	Platform v1.Platform
	Image    v1.Image
	Packages []string // name=version, sorted
	Took     time.Duration
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
	// LabelFlavour is "distroless" on distroless bases.
	LabelFlavour = "dev.sailmaker.base.flavour"
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

// PreflightSpec says what is missing for building s: on top of Preflight,
// a Debian image for another architecture runs that architecture's
// maintainer scripts under qemu, through binfmt_misc. (A distroless image
// only extracts packages and needs no emulation.)
func PreflightSpec(s Spec) error {
	if err := Preflight(); err != nil {
		return err
	}
	for _, p := range s.PlatformList() {
		plat, err := ParsePlatform(p)
		if err != nil {
			return err
		}
		if s.Distroless != nil || plat.Architecture == runtime.GOARCH {
			continue
		}
		if err := checkEmulation(plat.Architecture); err != nil {
			return fmt.Errorf("%s for %s: %w", s.Name, p, err)
		}
	}
	return nil
}

// Build makes the image (or, for several platforms, the index). It runs
// mmdebstrap (and `go mod download` for the toolchain) outside any
// container; nothing is pulled from an image registry. Platforms are
// built two at a time.
func Build(ctx context.Context, s Spec, o Options) (*Result, error) {
	if err := PreflightSpec(s); err != nil {
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

	platforms := s.PlatformList()
	if s.GoVersion != "" && (len(platforms) != 1 || platforms[0] != "linux/amd64") {
		return nil, fmt.Errorf("%s: an image with the Go toolchain is built for linux/amd64 only", s.Name)
	}
	res := &Result{Platforms: make([]PlatformResult, len(platforms))}
	if s.GoVersion != "" {
		o.Log.WithFields(logrus.Fields{"image": s.Name + ":" + s.Version, "go": s.GoVersion}).Info("fetching Go toolchain module")
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(2)
	for i, p := range platforms {
		eg.Go(func() error {
			plat, err := ParsePlatform(p)
			if err != nil {
				return err
			}
			dir := filepath.Join(work, plat.Architecture)
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			start := time.Now()
			log := o.Log.WithFields(logrus.Fields{"image": s.Name + ":" + s.Version, "platform": p})
			var pr *PlatformResult
			if s.Distroless != nil {
				pr, err = buildDistroless(ectx, s, o, plat, dir, log)
			} else {
				pr, err = buildDebian(ectx, s, o, plat, dir, log, res)
			}
			if err != nil {
				if len(platforms) > 1 {
					return fmt.Errorf("%s: %w", p, err)
				}
				return err
			}
			pr.Took = time.Since(start)
			d, _ := pr.Image.Digest()
			log.WithFields(logrus.Fields{"digest": d.String(), "took": pr.Took.Round(time.Second)}).Info("image ready")
			res.Platforms[i] = *pr
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	res.Packages = res.Platforms[0].Packages
	if len(platforms) == 1 {
		res.Image = res.Platforms[0].Image
	} else {
		if res.Index, err = newIndex(res.Platforms); err != nil {
			return nil, err
		}
	}
	res.work = work
	ok = true
	return res, nil
}

// buildDebian makes one platform's image of an installed Debian system.
// The Go toolchain layer (amd64 only, checked by the recipe) is fetched by
// the first platform and recorded in res.
func buildDebian(ctx context.Context, s Spec, o Options, plat v1.Platform, work string, log logrus.FieldLogger, res *Result) (*PlatformResult, error) {
	log.WithFields(logrus.Fields{"suite": s.Suite, "packages": strings.Join(s.Packages, ",")}).Info("building root filesystem with mmdebstrap")
	start := time.Now()
	rawTar := filepath.Join(work, "rootfs.tar")
	defer os.Remove(rawTar)
	pkgFile := filepath.Join(work, "packages.txt")
	if err := mmdebstrap(ctx, s, o, plat, rawTar, pkgFile); err != nil {
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
	goSum := ""
	if s.GoVersion != "" {
		goLayer, sum, err := goToolchainLayer(ctx, s.GoVersion, o, filepath.Join(work, "go.tar.gz"), epoch)
		if err != nil {
			return nil, err
		}
		goSum = sum
		res.GoSum = sum
		layers = append(layers, mutate.Addendum{
			Layer:     goLayer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "golang.org/toolchain@" + toolchainVersion(s.GoVersion), Comment: "Go " + s.GoVersion},
		})
	}
	img, err := assemble(s, plat, layers, pkgs, goSum, []string{"/bin/sh"})
	if err != nil {
		return nil, err
	}
	return &PlatformResult{Platform: plat, Image: img, Packages: pkgs}, nil
}

// assemble puts layers and the config together.
func assemble(s Spec, plat v1.Platform, layers []mutate.Addendum, pkgs []string, goSum string, cmd []string) (v1.Image, error) {
	epoch := time.Unix(s.SourceDateEpoch, 0).UTC()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.Append(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Variant = plat.Architecture, plat.OS, plat.Variant
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = env(s)
	cf.Config.Labels = labels(s, pkgs, goSum, epoch)
	cf.Config.Cmd = cmd
	cf.Config.User = s.User
	cf.Config.WorkingDir = s.Workdir
	return mutate.ConfigFile(img, cf)
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

func labels(s Spec, pkgs []string, goSum string, epoch time.Time) map[string]string {
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
	l[LabelPackages] = strings.Join(pkgs, ",")
	if s.Distroless != nil {
		l[LabelFlavour] = "distroless"
	}
	if s.RecipeDigest != "" {
		l[LabelRecipeDigest] = s.RecipeDigest
	}
	if s.GoVersion != "" {
		l[LabelGoVersion] = s.GoVersion
		l[LabelGoSum] = goSum
	}
	return l
}

// mmdebstrap writes the root filesystem as a tarball and the package list.
func mmdebstrap(ctx context.Context, s Spec, o Options, plat v1.Platform, out, pkgFile string) error {
	args := []string{
		"--mode=root",
		"--variant=" + s.Variant,
		"--format=tar",
		"--skip=output/dev",
	}
	args = append(args, archArgs(plat)...)
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	for _, u := range s.Users {
		home := "--create-home"
		switch {
		case u.Home == "/nonexistent":
			home = "--no-create-home --home-dir /nonexistent"
		case u.Home != "":
			home = "--create-home --home-dir " + shellQuote(u.Home)
		}
		args = append(args, fmt.Sprintf(`--customize-hook=chroot "$1" useradd %s --uid %d --user-group --shell /bin/sh %s`, home, u.UID, shellQuote(u.Name)))
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
	// As upstream's Dockerfile.base does it: the alternative is set to a
	// path in manual mode, so a package upgrade does not move it back.
	for _, a := range s.Alternatives {
		args = append(args, `--customize-hook=chroot "$1" update-alternatives --set `+shellQuote(a.Name)+" "+shellQuote(a.Path))
	}
	args = append(args,
		`--customize-hook=chroot "$1" dpkg-query -W -f='${Package}=${Version}\n' > `+shellQuote(pkgFile),
		// Logs and caches that differ between runs.
		`--customize-hook=rm -rf "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/cache/ldconfig/aux-cache "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old`,
		s.Suite, out)
	return runMmdebstrap(ctx, s, o, args, filepath.Dir(out))
}

// archArgs selects a foreign architecture; the host's own needs no flag
// (which keeps the images built before platforms existed the same).
func archArgs(plat v1.Platform) []string {
	if plat.Architecture == runtime.GOARCH {
		return nil
	}
	return []string{"--architectures=" + plat.Architecture}
}

// runMmdebstrap runs mmdebstrap with args and the mirrors, and explains
// the failures people hit.
func runMmdebstrap(ctx context.Context, s Spec, o Options, args []string, workDir string) error {
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
			return fmt.Errorf("mmdebstrap ran out of disk space in %s: free some space or set --state-dir elsewhere: %w", workDir, err)
		}
		if strings.Contains(msg, "can not be executed") || strings.Contains(msg, "arch-test") {
			return fmt.Errorf("mmdebstrap cannot run %s programs here (qemu-user-static, binfmt-support and a mounted binfmt_misc are needed; `make deps` sets them up): %w\n%s", s.PlatformList(), err, msg)
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
