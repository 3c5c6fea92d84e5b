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
	"golang.org/x/sys/unix"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/atomicfile"
	"github.com/sailmaker/sailmaker/recipes"

	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/internal/tail"
)

// ErrChecksum is wrapped by every checksum mismatch.
var ErrChecksum = errors.New("checksum mismatch")

// ErrUpstreamTagMoved is wrapped when an upstream git tag no longer resolves to the
// commit the recipe pins.
var ErrUpstreamTagMoved = errors.New("upstream tag moved")

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
	// EnvoyDir holds the Envoy binary as "envoy", if the recipe has one:
	// linux/amd64's (as Envoy["amd64"]), when the build has that platform.
	EnvoyDir    string
	EnvoySHA256 string
	EnvoyURL    string
	// Envoy is the Envoy of each architecture built (amd64, arm64).
	Envoy map[string]*EnvoyInput
	// ProxySHA is PROXY_REPO_SHA from the source's istio.deps.
	ProxySHA string
	// ModLayer and SourceLayer are the module cache and the source
	// (SourceDir's tree: the commit's, then the files the patches change)
	// as images in the input layer store (see InputLayer).
	ModLayer    InputLayer
	SourceLayer InputLayer
	// pristineDir is the checkout of the commit without the patches;
	// sourceID names SourceDir's tree (the commit and the patches).
	pristineDir string
	sourceID    string
}

// EnvoyInput is the verified Envoy of one architecture.
type EnvoyInput struct {
	// Dir holds the binary as "envoy".
	Dir string
	// SHA256 is the tarball's, URL where it came from, BinarySHA256 the
	// binary's (what the image's /usr/local/bin/envoy must hash to).
	SHA256       string
	URL          string
	BinarySHA256 string
	// Override: the sha256 or the file was given for this build, not
	// pinned by the recipe.
	Override bool
}

// EnvoyOverride replaces the download or the pinned sha256 of one
// architecture's Envoy tarball.
type EnvoyOverride struct {
	File   string
	SHA256 string
}

// InputOptions say where inputs come from.
type InputOptions struct {
	Config *config.Config
	// EnvoyFile is a local Envoy tarball to use instead of downloading it.
	EnvoyFile string
	// EnvoySHA256 overrides the recipe's pinned checksum.
	EnvoySHA256 string
	// EnvoyByArch are EnvoyFile and EnvoySHA256 for other architectures,
	// by TARGET_ARCH (amd64's may be given here too).
	EnvoyByArch map[string]EnvoyOverride
	// Arches are the architectures whose Envoy is fetched (default: those
	// of the recipe's platforms).
	Arches []string
	Log    logrus.FieldLogger
	// Policy, if set, limits where the source and artifacts may come from
	// (the service's server.inputs; redirects are checked too). Nil: any
	// URL the recipe's validation accepts (the local CLI).
	Policy *config.InputPolicy
	// HideChecksums leaves the sha256 of downloaded content out of errors:
	// the service's callers may not be allowed to read that content.
	HideChecksums bool
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

// SourceMirror is the bare git repository builds keep of the upstream
// gitURL (as a recipe names it) under the cache directory: what `audit
// diff upstream` reads a source's Dockerfiles from.
func SourceMirror(cfg *config.Config, gitURL string) string {
	return filepath.Join(cfg.CacheDir(), "git", sha256Hex([]byte(gitURL))[:16]+".git")
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
	if err := makeInputLayers(ctx, o, in); err != nil {
		return nil, err
	}
	return in, nil
}

// makeInputLayers writes the module cache and the source into the input
// layer store, once per go.sum, per commit and per set of patches.
func makeInputLayers(ctx context.Context, o InputOptions, in *Inputs) error {
	cache := o.Config.CacheDir()
	if err := removeStaleTemps(cache); err != nil {
		return fmt.Errorf("cleaning the input layer store: %w", err)
	}
	t := time.Now()
	keys := in.layerKeys()
	mod, err := inputImage(cache, keys.mod, time.Unix(0, 0).UTC(), nil, treeLayer{dir: in.GoModCache})
	if err != nil {
		return err
	}
	in.ModLayer = mod
	mtime := time.Unix(in.CommitTime, 0).UTC()
	if _, ok := cachedInputImage(cache, keys.commit); !ok {
		if err := stampIndex(ctx, in.pristineDir, mtime); err != nil {
			return fmt.Errorf("preparing the checkout's git index for its layer: %w", err)
		}
	}
	src, err := inputImage(cache, keys.commit, mtime, nil, treeLayer{dir: in.pristineDir, mtimes: map[string]time.Time{".git/index": mtime.Add(indexLater)}})
	if err != nil {
		return err
	}
	if l, ok := cachedInputImage(cache, keys.source); ok {
		src = l
	} else if in.SourceDir != in.pristineDir {
		changed, deleted, err := changedFiles(ctx, in.SourceDir)
		if err != nil {
			return fmt.Errorf("listing what the patches changed: %w", err)
		}
		// A second later than the commit's files, whose times the index
		// holds: git reads what the patches changed, even at the same
		// size.
		if src, err = inputImage(cache, keys.source, mtime.Add(patchedLater), &src, treeLayer{dir: in.SourceDir, paths: changed, deleted: deleted}); err != nil {
			return err
		}
	}
	in.SourceLayer = src
	if d := time.Since(t); d > time.Second {
		o.Log.WithFields(logrus.Fields{"took": d.Round(time.Millisecond), "modules": output.Bytes(mod.Size), "source": output.Bytes(src.Size)}).Info("wrote the module cache and the source as input layers (once per go.sum, commit and patches)")
	}
	return nil
}

// inputLayerKeys name in's images in the input layer store: the module
// cache's (by go.mod and go.sum), the commit's checkout and the source
// with the patches (the same as the commit's without patches), each after
// its folder in the input cache.
type inputLayerKeys struct{ mod, commit, source string }

func (in *Inputs) layerKeys() inputLayerKeys {
	// src2: the source layers' git index matches the layer (stampIndex).
	return inputLayerKeys{mod: "gomod-" + in.GoSumSHA[:32], commit: "src2-" + filepath.Base(in.pristineDir), source: "src2-" + in.sourceID}
}

// The source layers' times: the commit's files have the commit time, what
// the patches change a second more, and the git index two.
const (
	patchedLater = time.Second
	indexLater   = 2 * time.Second
)

// stampIndex makes the git index of the checkout in dir hold what git will
// find in the layer made of it, so that upstream's version stamping (its
// `git status` and `git diff-index`, in the build container) does not read
// every file of the tree again (0.15 s to 0.2 s for Istio's, on every
// build): git compares only sizes and whole-second mtimes
// (core.checkStat=minimal, core.trustctime=false: the layer's inodes,
// owners and ctimes are never the checkout's), every tracked file gets the
// commit time the layer gives it, and the index is refreshed. The layer
// dates the index itself later than the files (indexLater), or git would
// take every entry as racily clean and read the file anyway; what the
// patches change is dated in between (patchedLater), so git reads it.
func stampIndex(ctx context.Context, dir string, mtime time.Time) error {
	for _, kv := range [][2]string{{"core.checkStat", "minimal"}, {"core.trustctime", "false"}} {
		if _, err := git(ctx, dir, "config", kv[0], kv[1]); err != nil {
			return err
		}
	}
	files, err := run(ctx, dir, nil, "git", "ls-files", "-z")
	if err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	for _, f := range strings.Split(string(files), "\x00") {
		if f == "" {
			continue
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, f), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	_, err = git(ctx, dir, "update-index", "-q", "--refresh")
	return err
}

// ForgetInputLayers makes the next build write in's input layers again,
// as a new go.sum and commit would (the benchmark's first-time scenario):
// their blobs are written over, never removed under a build reading them.
func ForgetInputLayers(cacheDir string, in *Inputs) error {
	keys := in.layerKeys()
	for _, k := range []string{keys.mod, keys.commit, keys.source} {
		if err := os.Remove(filepath.Join(LayerStoreDir(cacheDir), "keys", k)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// changedFiles lists what differs in the checkout dir from its commit:
// files changed or added, and files deleted.
func changedFiles(ctx context.Context, dir string) (changed, deleted []string, err error) {
	out, err := gitStatus(ctx, dir, "--ignored=matching")
	if err != nil {
		return nil, nil, err
	}
	for _, e := range strings.Split(string(out), "\x00") {
		if len(e) < 4 {
			continue
		}
		st, p := e[:2], e[3:]
		if st[0] == 'D' || st[1] == 'D' {
			deleted = append(deleted, p)
		} else {
			changed = append(changed, p)
		}
	}
	return changed, deleted, nil
}

// gitStatus is `git status` of the checkout dir, one entry per file, with
// args: NUL-separated porcelain entries, renames as a deletion and an
// addition.
func gitStatus(ctx context.Context, dir string, args ...string) ([]byte, error) {
	// core.trustctime=false: the checkout is a copy made of hard links,
	// whose ctimes the linking changed; trusting them would make git read
	// every file again (0.1 s to 0.5 s for Istio's tree).
	return run(ctx, dir, []string{"GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}, "git", append([]string{"-c", "core.trustctime=false", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"}, args...)...)
}

// fetchSource keeps a bare mirror per upstream URL, fetches the tag afresh
// (tags can move upstream), insists it still names the pinned commit, and
// checks the commit out with .git into a directory keyed by commit and
// patches.
func fetchSource(ctx context.Context, r *recipes.Recipe, o InputOptions, in *Inputs) error {
	src := r.Spec.Source
	if o.Policy != nil {
		if err := o.Policy.CheckGit(src.Git); err != nil {
			return fmt.Errorf("spec.source.git: %w", err)
		}
	}
	fetchURL := o.Config.RewriteGitURL(src.Git)
	cache := o.Config.CacheDir()
	mirror := SourceMirror(o.Config, src.Git)
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
		return fmt.Errorf("%w: tag %s of %s now points to %s, but the recipe pins %s; refusing to build (check upstream, then update the recipe's commit)", ErrUpstreamTagMoved, src.Tag, src.Git, got, src.Commit)
	}
	in.Commit = got
	ct, err := git(ctx, mirror, "show", "-s", "--format=%ct", got)
	if err != nil {
		return err
	}
	in.CommitTime, _ = strconv.ParseInt(ct, 10, 64)

	pristine := checkoutDir(cache, got, nil)
	if err := checkout(ctx, mirror, got, pristine); err != nil {
		return err
	}
	in.pristineDir = pristine
	in.SourceDir = pristine
	in.sourceID = filepath.Base(pristine)
	if len(r.Patches()) == 0 {
		return nil
	}
	in.sourceID = filepath.Base(checkoutDir(cache, got, r.Patches()))
	in.SourceDir = pristine + patchedSuffix
	return patchedCheckout(ctx, o, r.Patches(), in.SourceDir, in.sourceID, src.Git+" at "+got, pristine)
}

// patchedSuffix names the checkout of a commit with patches: one per
// commit, beside the commit's own (see patchedCheckout).
const patchedSuffix = "-patched"

// patchedCheckout makes dir the checkout pristine with patches applied,
// id naming the patches. There is one such folder per commit, whichever
// patches it has: dir.patches says which, and holds only when they were
// applied whole. For other patches, what the last ones changed is put
// back as the commit has it (each file linked again to pristine's) before
// the new ones are applied: a build with a new patch changes a few files,
// not a copy of the whole tree (which is what a folder per set of patches
// cost, and kept forever). A folder in any other state is made again from
// pristine, as a copy made of hard links: git apply, like every git
// command, writes a changed file as a new file renamed into place, so
// pristine's files are never written through their links.
func patchedCheckout(ctx context.Context, o InputOptions, patches []recipes.Patch, dir, id, where, pristine string) error {
	marker := dir + ".patches"
	b, err := os.ReadFile(marker)
	if err == nil && string(b) == id {
		return nil
	}
	remake := err != nil
	if !remake {
		// Off first: a folder left halfway has no marker, and is made
		// again.
		if err := os.Remove(marker); err != nil {
			return err
		}
		if err := unpatch(ctx, dir, pristine); err != nil {
			o.Log.WithError(err).Warn("the patched checkout could not be put back as the commit has it; making it again")
			remake = true
		}
	}
	if remake {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		tmp := dir + ".tmp"
		_ = os.RemoveAll(tmp)
		if _, err := run(ctx, "", nil, "cp", "-a", "-l", pristine, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			return err
		}
	}
	if err := applyPatches(ctx, o, patches, dir, where); err != nil {
		return err
	}
	return atomicfile.Write(marker, []byte(id))
}

// unpatch puts back in dir, a checkout of pristine's commit with patches
// applied, every file the patches changed, added or deleted, as pristine
// has it: linked to pristine's file, or removed.
func unpatch(ctx context.Context, dir, pristine string) error {
	// pristine's git index knows its files' sizes and times (see
	// stampIndex), which the files linked back share: git reads only
	// what the patches changed. git writes an index as a new file, never
	// through the link.
	index := filepath.Join(".git", "index")
	if err := os.Remove(filepath.Join(dir, index)); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Link(filepath.Join(pristine, index), filepath.Join(dir, index)); err != nil {
		return err
	}
	changed, deleted, err := changedFiles(ctx, dir)
	if err != nil {
		return err
	}
	for _, p := range append(changed, deleted...) {
		if !filepath.IsLocal(p) {
			return fmt.Errorf("git status names %q, outside the checkout", p)
		}
		at := filepath.Join(dir, p)
		if err := os.RemoveAll(at); err != nil {
			return err
		}
		from := filepath.Join(pristine, p)
		fi, err := os.Lstat(from)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			return err
		}
		if fi.IsDir() {
			// A folder git ignores, named whole.
			_, err = run(ctx, "", nil, "cp", "-a", "-l", from, at)
		} else {
			err = os.Link(from, at)
		}
		if err != nil {
			return err
		}
	}
	// What git tracks, and what it does not but would see, is the
	// commit's again (what it ignores is pristine's, linked above).
	out, err := gitStatus(ctx, dir)
	if err == nil && len(out) > 0 {
		err = fmt.Errorf("files still differ from the commit: %q", strings.ReplaceAll(strings.TrimRight(string(out), "\x00"), "\x00", ", "))
	}
	return err
}

// checkoutDir names the checkout of commit with patches (with none: the
// commit's own checkout, kept in that folder; with some, the name of the
// source layer they give, see patchedCheckout).
func checkoutDir(cache, commit string, patches []recipes.Patch) string {
	h := sha256.New()
	fmt.Fprintln(h, commit)
	for _, p := range patches {
		fmt.Fprintln(h, p.Path, p.SHA256)
	}
	return filepath.Join(cache, "src", hex.EncodeToString(h.Sum(nil))[:32])
}

// checkout checks commit out of mirror, with .git, into dir, once:
// dir.ready marks a finished one.
func checkout(ctx context.Context, mirror, commit, dir string) error {
	if _, err := os.Stat(dir + ".ready"); err == nil {
		return nil
	}
	_ = os.RemoveAll(dir)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if _, err := git(ctx, "", "clone", "-q", "--no-checkout", mirror, tmp); err != nil {
		return err
	}
	if _, err := git(ctx, tmp, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".git", "info", "exclude"), []byte("/out/\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.WriteFile(dir+".ready", nil, 0o644)
}

// applyPatches applies patches, in order, to the checkout dir (of where).
func applyPatches(ctx context.Context, o InputOptions, patches []recipes.Patch, dir, where string) error {
	for _, p := range patches {
		pf := filepath.Join(dir, ".git", "sailmaker-"+path.Base(p.Path))
		if err := os.WriteFile(pf, p.Data, 0o644); err != nil {
			return err
		}
		if _, err := git(ctx, dir, "apply", "--whitespace=nowarn", pf); err != nil {
			return fmt.Errorf("patch %s does not apply to %s: %w", p.Path, where, err)
		}
		_ = os.Remove(pf)
		o.Log.WithField("patch", p.Path).Info("applied patch")
	}
	return nil
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

// fetchEnvoy fetches the Envoy of every architecture built (envoyArches).
func fetchEnvoy(ctx context.Context, r *recipes.Recipe, o InputOptions, in *Inputs) error {
	e := r.Spec.Inputs.Envoy
	if e == nil {
		return nil
	}
	in.Envoy = map[string]*EnvoyInput{}
	for _, arch := range envoyArches(r, o) {
		x, err := fetchEnvoyArch(ctx, r, o, arch)
		if err != nil {
			return err
		}
		in.Envoy[arch] = x
		if arch == recipes.DefaultArch {
			in.EnvoyDir, in.EnvoySHA256, in.EnvoyURL = x.Dir, x.SHA256, x.URL
		}
	}
	return nil
}

// envoyArches are the architectures whose Envoy a build fetches.
func envoyArches(r *recipes.Recipe, o InputOptions) []string {
	if len(o.Arches) > 0 {
		return o.Arches
	}
	var out []string
	for _, p := range r.Spec.PlatformList() {
		out = append(out, recipes.ArchOf(p))
	}
	return out
}

// override is what the options say for arch's Envoy.
func (o InputOptions) override(arch string) EnvoyOverride {
	if x, ok := o.EnvoyByArch[arch]; ok {
		return x
	}
	if arch == recipes.DefaultArch {
		return EnvoyOverride{File: o.EnvoyFile, SHA256: o.EnvoySHA256}
	}
	return EnvoyOverride{}
}

// fetchEnvoyArch downloads one architecture's Envoy tarball (or takes
// --envoy-file), checks its sha256 and unpacks the binary. Content is
// cached by checksum, readable by its owner only; a download goes to disk
// as it arrives, hashed on the way.
func fetchEnvoyArch(ctx context.Context, r *recipes.Recipe, o InputOptions, arch string) (*EnvoyInput, error) {
	e := r.Spec.Inputs.Envoy
	art, ok := e.For(arch)
	if !ok {
		return nil, fmt.Errorf("the recipe has no %s Envoy tarball (spec.inputs.envoy.arch.%s)", arch, arch)
	}
	// Messages name the architecture only when there is more than one.
	what := "Envoy"
	if r.Spec.MultiPlatform() || arch != recipes.DefaultArch {
		what = arch + " Envoy"
	}
	flag := "--envoy-sha256 <sum>"
	if arch != recipes.DefaultArch {
		flag = "--envoy-sha256 " + arch + "=<sum>"
	}
	ov := o.override(arch)
	want := art.SHA256
	if ov.SHA256 != "" {
		want = strings.ToLower(ov.SHA256)
	} else if art.Unconfirmed {
		return nil, fmt.Errorf("the recipe's %s checksum is unconfirmed: check the artifact %s, then pass %s (or confirm it in the recipe)", what, art.URL, flag)
	}
	if checkHex64(want) != nil {
		return nil, fmt.Errorf("%s sha256 %q: must be 64 hex digits", what, want)
	}
	if o.Policy != nil {
		if ov.File != "" {
			return nil, errors.New("an Envoy file is for the local CLI only")
		}
		if err := o.Policy.CheckArtifact(art.URL); err != nil {
			return nil, fmt.Errorf("spec.inputs.envoy.url (%s): %w", arch, err)
		}
	}
	cache := filepath.Join(o.Config.CacheDir(), "artifacts")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return nil, err
	}
	in := &EnvoyInput{URL: art.URL, Override: ov.SHA256 != "" || ov.File != ""}
	from := art.URL
	cached := filepath.Join(cache, want)
	var got string
	var err error
	switch {
	case ov.File != "":
		from = ov.File
		in.URL = "file://" + ov.File
		got, err = copyHashed(ctx, cached, func() (io.ReadCloser, error) { return os.Open(ov.File) })
	case fileHas(cached, want):
		got = want
	default:
		o.Log.WithFields(logrus.Fields{"url": art.URL, "arch": arch}).Info("downloading Envoy")
		got, err = copyHashed(ctx, cached, func() (io.ReadCloser, error) { return open(ctx, art.URL, o.Policy) })
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s from %s: %w", what, from, err)
	}
	if got != want {
		os.Remove(cached)
		if o.HideChecksums {
			return nil, fmt.Errorf("%w: the %s artifact %s does not have the sha256 the recipe pins (%s); refusing to build", ErrChecksum, what, from, want)
		}
		return nil, fmt.Errorf("%w: %s artifact %s has sha256 %s, the recipe pins %s; refusing to build", ErrChecksum, what, from, got, want)
	}
	in.SHA256 = got
	dir := filepath.Join(o.Config.CacheDir(), "envoy", got[:32])
	in.Dir = dir
	bin := filepath.Join(dir, "envoy")
	if _, err := os.Stat(bin); err != nil {
		f, err := os.Open(cached)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := extractFileTo(f, e.Binary, bin); err != nil {
			return nil, fmt.Errorf("unpacking %s from the %s tarball: %w", e.Binary, what, err)
		}
	}
	if in.BinarySHA256, err = fileSHA256(bin); err != nil {
		return nil, err
	}
	return in, nil
}

// fileSHA256 is the hex sha256 of the file at p.
func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func checkHex64(s string) error {
	if len(s) != 64 {
		return errors.New("not 64 hex digits")
	}
	if _, err := hex.DecodeString(s); err != nil {
		return err
	}
	return nil
}

// maxArtifactSize bounds one downloaded input.
const maxArtifactSize = 4 << 30

// fileHas reports whether the file at p holds content with sha256 want.
func fileHas(p, want string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == want
}

// copyHashed writes what open reads to dst (through a temporary file in its
// directory, mode 0600) and returns its sha256; memory stays bounded
// whatever the size.
func copyHashed(ctx context.Context, dst string, open func() (io.ReadCloser, error)) (string, error) {
	rc, err := open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(ctxReader{ctx, rc}, maxArtifactSize+1))
	if err == nil && n > maxArtifactSize {
		err = fmt.Errorf("larger than %d bytes", int64(maxArtifactSize))
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// open opens an artifact URL: a file:// path, or an http(s) GET whose every
// redirect policy (when set) must allow too.
func open(ctx context.Context, u string, policy *config.InputPolicy) (io.ReadCloser, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	if pu.Scheme == "file" {
		if policy != nil {
			return nil, policy.CheckArtifact(u)
		}
		return os.Open(pu.Path)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	client := &http.Client{CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if policy != nil {
			if err := policy.CheckArtifact(r.URL.String()); err != nil {
				return fmt.Errorf("redirected: %w", err)
			}
		}
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("the artifact mirror is not reachable: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %s (is the artifact kept on the internal mirror?)", u, resp.Status)
	}
	return cancelCloser{resp.Body, cancel}, nil
}

type cancelCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelCloser) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

// extractFileTo writes one regular file of a tarball (gzip-compressed or
// not) to dst, mode 0700, streaming.
func extractFileTo(r io.ReadSeeker, name, dst string) error {
	var src io.Reader = r
	if gz, err := gzip.NewReader(r); err == nil {
		src = gz
	} else if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tr := tar.NewReader(src)
	want := path.Clean(strings.TrimPrefix(name, "/"))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s is not in the tarball", name)
		}
		if err != nil {
			return err
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != want || h.Typeflag != tar.TypeReg {
			continue
		}
		tmp := dst + ".tmp"
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	}
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
