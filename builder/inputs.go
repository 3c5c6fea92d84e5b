package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"

	"github.com/sailmaker/sailmaker/internal/tail"
)

// ErrChecksum is wrapped by every checksum mismatch.
var ErrChecksum = errors.New("checksum mismatch")

// ErrTagMoved is wrapped when an upstream tag no longer resolves to the
// commit the recipe pins.
var ErrTagMoved = errors.New("upstream tag moved")

// Inputs are everything the build needs, fetched and verified outside it.
type Inputs struct {
	// SourceDir is the checkout at the pinned commit, with .git and the
	// recipe's patches applied.
	SourceDir  string
	Commit     string
	CommitTime int64
	// GoModCache holds every module go.sum names, verified by `go mod download`.
	GoModCache string
	GoSumSHA   string
	// EnvoyDir holds the Envoy binary as "envoy", if the recipe has one.
	EnvoyDir    string
	EnvoySHA256 string
	EnvoyURL    string
	// ProxySHA is PROXY_REPO_SHA from the source's istio.deps.
	ProxySHA string
}

// InputOptions say where inputs come from.
type InputOptions struct {
	Config *config.Config
	// EnvoyFile is a local Envoy tarball to use instead of downloading it.
	EnvoyFile string
	// EnvoySHA256 overrides the recipe's pinned checksum.
	EnvoySHA256 string
	Log         logrus.FieldLogger
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(tail.Lines(stderr.String(), 15)))
	}
	return stdout.Bytes(), nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := run(ctx, dir, []string{"GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}, "git", args...)
	return strings.TrimSpace(string(out)), err
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// FetchInputs fetches and verifies the source, modules and Envoy of r.
func FetchInputs(ctx context.Context, r *recipes.Recipe, o InputOptions) (*Inputs, error) {
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	unlock, err := lockInputCache(ctx, o.Config.CacheDir(), o.Log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in := &Inputs{}
	if err := fetchSource(ctx, r, o, in); err != nil {
		return nil, err
	}
	if err := fetchModules(ctx, o, in); err != nil {
		return nil, err
	}
	if err := checkDeps(r, in); err != nil {
		return nil, err
	}
	if err := fetchEnvoy(ctx, r, o, in); err != nil {
		return nil, err
	}
	return in, nil
}

// fetchSource keeps a bare mirror per upstream URL, fetches the tag afresh
// (tags can move upstream), insists it still names the pinned commit, and
// checks the commit out with .git into a directory keyed by commit and
// patches.
func fetchSource(ctx context.Context, r *recipes.Recipe, o InputOptions, in *Inputs) error {
	src := r.Spec.Source
	fetchURL := o.Config.RewriteGitURL(src.Git)
	cache := o.Config.CacheDir()
	mirror := filepath.Join(cache, "git", sha256Hex([]byte(src.Git))[:16]+".git")
	if _, err := os.Stat(filepath.Join(mirror, "HEAD")); err != nil {
		if err := os.MkdirAll(mirror, 0o755); err != nil {
			return err
		}
		if _, err := git(ctx, mirror, "init", "--bare", "-q"); err != nil {
			return err
		}
	}
	log := o.Log.WithFields(logrus.Fields{"git": fetchURL, "tag": src.Tag})
	log.Info("fetching source")
	// --force: the local tag follows upstream, so a moved tag shows below.
	// The checkout clones it too, for `git describe`.
	tagRef := "refs/tags/" + src.Tag
	if _, err := git(ctx, mirror, "fetch", "-q", "--depth=1", "--no-tags", "--force", fetchURL, tagRef+":"+tagRef); err != nil {
		return fmt.Errorf("fetching tag %s from %s (for an air-gapped source, map it with git.mirrors in the config): %w", src.Tag, fetchURL, err)
	}
	got, err := git(ctx, mirror, "rev-parse", tagRef+"^{commit}")
	if err != nil {
		return err
	}
	if got != src.Commit {
		return fmt.Errorf("%w: tag %s of %s now points to %s, but the recipe pins %s; refusing to build (check upstream, then update the recipe's commit)", ErrTagMoved, src.Tag, src.Git, got, src.Commit)
	}
	in.Commit = got
	ct, err := git(ctx, mirror, "show", "-s", "--format=%ct", got)
	if err != nil {
		return err
	}
	in.CommitTime, _ = strconv.ParseInt(ct, 10, 64)

	h := sha256.New()
	fmt.Fprintln(h, got)
	for _, p := range r.Patches() {
		fmt.Fprintln(h, p.Path, p.SHA256)
	}
	dir := filepath.Join(cache, "src", hex.EncodeToString(h.Sum(nil))[:32])
	in.SourceDir = dir
	if _, err := os.Stat(dir + ".ready"); err == nil {
		return nil
	}
	_ = os.RemoveAll(dir)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if _, err := git(ctx, "", "clone", "-q", "--no-checkout", mirror, tmp); err != nil {
		return err
	}
	if _, err := git(ctx, tmp, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", got); err != nil {
		return err
	}
	for _, p := range r.Patches() {
		pf := filepath.Join(tmp, ".git", "sailmaker-"+path.Base(p.Path))
		if err := os.WriteFile(pf, p.Data, 0o644); err != nil {
			return err
		}
		if _, err := git(ctx, tmp, "apply", "--whitespace=nowarn", pf); err != nil {
			return fmt.Errorf("patch %s does not apply to %s at %s: %w", p.Path, src.Git, got, err)
		}
		_ = os.Remove(pf)
		o.Log.WithField("patch", p.Path).Info("applied patch")
	}
	if err := os.WriteFile(filepath.Join(tmp, ".git", "info", "exclude"), []byte("/out/\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.WriteFile(dir+".ready", nil, 0o644)
}

// fetchModules downloads every module the source needs through the
// configured GOPROXY into a module cache keyed by go.sum; `go mod download`
// checks each against go.sum (and the checksum database for anything new).
func fetchModules(ctx context.Context, o InputOptions, in *Inputs) error {
	sum, err := os.ReadFile(filepath.Join(in.SourceDir, "go.sum"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	mod, err := os.ReadFile(filepath.Join(in.SourceDir, "go.mod"))
	if err != nil {
		return fmt.Errorf("the source has no go.mod: %w", err)
	}
	in.GoSumSHA = sha256Hex(append(mod, sum...))
	dir := filepath.Join(o.Config.CacheDir(), "gomod", in.GoSumSHA[:32])
	in.GoModCache = dir
	if _, err := os.Stat(dir + ".ready"); err == nil {
		return nil
	}
	o.Log.Info("downloading Go modules (verified against go.sum)")
	env := []string{"GOMODCACHE=" + dir, "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GONOSUMDB=", "GONOSUMCHECK=", "GOPRIVATE=", "GOINSECURE=", "GOWORK=off"}
	if o.Config.Go.Proxy != "" {
		env = append(env, "GOPROXY="+o.Config.Go.Proxy)
	}
	if o.Config.Go.SumDB != "" {
		env = append(env, "GOSUMDB="+o.Config.Go.SumDB)
	}
	if _, err := run(ctx, in.SourceDir, env, "go", "mod", "download"); err != nil {
		return fmt.Errorf("downloading Go modules through GOPROXY (set go.proxy in the config if the module proxy is elsewhere): %w", err)
	}
	// go.mod/go.sum must be as they were: the download may not change them.
	if after, _ := os.ReadFile(filepath.Join(in.SourceDir, "go.sum")); !bytes.Equal(after, sum) {
		return errors.New("go mod download changed go.sum: the source's go.sum is incomplete, so its modules cannot be verified")
	}
	return os.WriteFile(dir+".ready", nil, 0o644)
}

// checkDeps reads PROXY_REPO_SHA from the source's istio.deps: it must be
// the one the recipe's Envoy belongs to, never a value copied by hand.
func checkDeps(r *recipes.Recipe, in *Inputs) error {
	data, err := os.ReadFile(filepath.Join(in.SourceDir, "istio.deps"))
	if err != nil {
		if os.IsNotExist(err) && r.Spec.Inputs.Envoy == nil {
			return nil
		}
		return fmt.Errorf("reading istio.deps from the source: %w", err)
	}
	var deps []struct {
		Name          string `json:"name"`
		LastStableSHA string `json:"lastStableSHA"`
	}
	if err := json.Unmarshal(data, &deps); err != nil {
		return fmt.Errorf("parsing istio.deps: %w", err)
	}
	for _, d := range deps {
		if d.Name == "PROXY_REPO_SHA" {
			in.ProxySHA = d.LastStableSHA
		}
	}
	if e := r.Spec.Inputs.Envoy; e != nil && e.ProxySHA != in.ProxySHA {
		return fmt.Errorf("the recipe's inputs.envoy.proxySHA %s is not the source's PROXY_REPO_SHA %s (istio.deps at %s): use the Envoy build this release pins", e.ProxySHA, in.ProxySHA, in.Commit)
	}
	return nil
}

// fetchEnvoy downloads the Envoy tarball (or takes --envoy-file), checks its
// sha256 and unpacks the binary. Content is cached by checksum.
func fetchEnvoy(ctx context.Context, r *recipes.Recipe, o InputOptions, in *Inputs) error {
	e := r.Spec.Inputs.Envoy
	if e == nil {
		return nil
	}
	want := e.SHA256
	if o.EnvoySHA256 != "" {
		want = strings.ToLower(o.EnvoySHA256)
	} else if e.Unconfirmed {
		return fmt.Errorf("the recipe's Envoy checksum is unconfirmed: check the artifact %s, then pass --envoy-sha256 <sum> (or confirm it in the recipe)", e.URL)
	}
	cache := filepath.Join(o.Config.CacheDir(), "artifacts")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	in.EnvoyURL = e.URL
	var data []byte
	var err error
	from := e.URL
	cached := filepath.Join(cache, want)
	switch {
	case o.EnvoyFile != "":
		from = o.EnvoyFile
		in.EnvoyURL = "file://" + o.EnvoyFile
		data, err = os.ReadFile(o.EnvoyFile)
	default:
		if b, rerr := os.ReadFile(cached); rerr == nil && sha256Hex(b) == want {
			data = b
			break
		}
		o.Log.WithField("url", e.URL).Info("downloading Envoy")
		data, err = download(ctx, e.URL)
	}
	if err != nil {
		return fmt.Errorf("fetching Envoy from %s: %w", from, err)
	}
	got := sha256Hex(data)
	if got != want {
		return fmt.Errorf("%w: Envoy artifact %s has sha256 %s, the recipe pins %s; refusing to build", ErrChecksum, from, got, want)
	}
	in.EnvoySHA256 = got
	if err := os.WriteFile(cached, data, 0o644); err != nil {
		return err
	}
	dir := filepath.Join(o.Config.CacheDir(), "envoy", got[:32])
	in.EnvoyDir = dir
	if _, err := os.Stat(filepath.Join(dir, "envoy")); err == nil {
		return nil
	}
	bin, err := ExtractFile(data, e.Binary)
	if err != nil {
		return fmt.Errorf("unpacking %s from the Envoy tarball: %w", e.Binary, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "envoy"), bin, 0o755)
}

func download(ctx context.Context, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	if pu.Scheme == "file" {
		return os.ReadFile(pu.Path)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the artifact mirror is not reachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s (is the artifact kept on the internal mirror?)", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// ExtractFile returns one regular file from a tarball, gzip-compressed or not.
func ExtractFile(data []byte, name string) ([]byte, error) {
	var r io.Reader = bytes.NewReader(data)
	if gz, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
		r = gz
	}
	tr := tar.NewReader(r)
	want := path.Clean(strings.TrimPrefix(name, "/"))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s is not in the tarball", name)
		}
		if err != nil {
			return nil, err
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) == want && h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}
