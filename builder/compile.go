package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client/llb"
	"github.com/tonistiigi/fsutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"

	"github.com/sailmaker/sailmaker/internal/tail"
)

// Paths inside the compile container.
const (
	srcDir     = "/src"
	modDir     = "/go/pkg/mod"
	envoyInDir = "/inputs/envoy"
	outDir     = "/out"
	goCacheDir = "/root/.cache/go-build"
	// makeOutDir is upstream's output tree (TARGET_OUT), kept between
	// builds in a cache mount: see OutCacheID.
	makeOutDir = srcDir + "/out"
	// goTmpDir is the go command's work folder, on the same mount as
	// makeOutDir (see compileScript).
	goTmpDir = makeOutDir + "/.sailmaker-gotmp"
)

// OutCacheID names the cache mount that keeps upstream's out/ tree between
// builds that share the Go build cache goCacheID. Go does not link a
// binary again when the one at the -o path already has the build ID the
// link would give (the same inputs, the same bytes), so an incremental
// build links only what changed, as on a developer's machine; with a new
// out/ each time, every binary was linked again. Before make runs, every
// file in it gets the mtime 0, so a make rule that goes by timestamps
// always runs its recipe: what is kept can only spare the linker work,
// never stand in for a build. --check-reproducible builds with fresh ones.
func OutCacheID(goCacheID string) string { return goCacheID + "-out" }

// CompileSpec is one run of upstream's make targets per platform.
type CompileSpec struct {
	Recipe *recipes.Recipe
	Inputs *Inputs
	// Builder is the builder image by digest; BuilderEnv its config's Env.
	Builder    string
	BuilderEnv []string
	// CacheID names the Go build cache mount; a fresh one gives a cold build.
	// The make outputs' cache mount is named after it (OutCacheID).
	CacheID string
	// NoCache makes BuildKit run the step again even if it has the result.
	NoCache bool
	// Platforms are the platforms compiled (os/arch), each with its
	// TARGET_ARCH, cross-compiled in the builder image. Default: the
	// recipe's.
	Platforms []string
}

// CompileState is the LLB for the compile step: for each platform, one run
// of upstream's make targets with TARGET_ARCH set, in the builder image
// (by digest, on the build host's platform: a cross-compile, no
// emulation), with the source (with .git), the module cache and that
// platform's Envoy mounted in and the network disabled; all of them share
// the Go build cache. Its result is a tree with <os>_<arch>/build/<path>
// for each build: file the images take and <os>_<arch>/source/<path> for
// each source: file: one solve, one export, every platform.
func CompileState(s CompileSpec) llb.State {
	platforms := s.Platforms
	if len(platforms) == 0 {
		platforms = s.Recipe.Spec.PlatformList()
	}
	var outs []llb.State
	for _, p := range platforms {
		outs = append(outs, compileRun(s, p))
	}
	if len(outs) == 1 {
		return outs[0]
	}
	// Each run's /out holds only its own <os>_<arch> folder: merged, not
	// copied.
	return llb.Merge(outs, llb.WithCustomName("collect the "+strings.Join(platforms, ", ")+" builds"))
}

// compileRun is the make run for one platform; its result is its /out,
// which holds <os>_<arch>/ and in it what the images and packages take.
func compileRun(s CompileSpec, p string) llb.State {
	arch := recipes.ArchOf(p)
	r := s.Recipe
	var opts []llb.RunOption
	opts = append(opts,
		llb.Args([]string{"/bin/sh", "-euc", compileScript(r, s.Inputs, arch, path.Join(outDir, strings.ReplaceAll(p, "/", "_")))}),
		llb.Dir(srcDir),
		llb.Network(llb.NetModeNone),
		llb.WithCustomName(fmt.Sprintf("make TARGET_ARCH=%s %s (no network)", arch, strings.Join(r.Spec.Make.TargetsFor(arch), " "))),
		// The input layers are content-addressed: their digest keys the
		// step, BuildKit need not checksum every file in them.
		llb.AddMount(modDir, s.Inputs.ModLayer.State(ModuleCacheVertex+" (go.mod and go.sum sha256 "+s.Inputs.GoSumSHA[:12]+")"), llb.Readonly, llb.ContentCache(llb.MountContentCacheOff)),
		llb.AddMount(goCacheDir, llb.Scratch(), llb.AsPersistentCacheDir(s.CacheID, llb.CacheMountLocked)),
		llb.AddMount(makeOutDir, llb.Scratch(), llb.AsPersistentCacheDir(OutCacheID(s.CacheID), llb.CacheMountLocked)),
	)
	for _, e := range compileEnv(s) {
		k, v, _ := strings.Cut(e, "=")
		opts = append(opts, llb.AddEnv(k, v))
	}
	if e := s.Inputs.Envoy[arch]; e != nil {
		opts = append(opts, llb.AddMount(envoyInDir, envoyState(arch, e), llb.Readonly))
	}
	if s.NoCache {
		opts = append(opts, llb.IgnoreCache)
	}
	src := s.Inputs.SourceLayer.State(fmt.Sprintf("%s %s at %s with %d patch(es)", SourceVertex, r.Spec.Source.Tag, s.Inputs.Commit, len(r.Patches())))
	run := ImageState(s.Builder, nil).Run(append(opts, llb.AddMount(srcDir, src, llb.ContentCache(llb.MountContentCacheOff)))...)
	return run.AddMount(outDir, llb.Scratch())
}

// ModuleCacheVertex begins the name of the step that loads the Go module
// cache into BuildKit (what the benchmark reports as module sync).
const ModuleCacheVertex = "Go module cache"

// SourceVertex begins the name of the step that loads the source.
const SourceVertex = "upstream source"

// envoyMount names the local directory of arch's Envoy.
func envoyMount(arch string) string { return "envoy-" + arch }

// envoyState is the verified Envoy of arch (its folder, with the binary
// as envoy), sent by the session.
func envoyState(arch string, e *EnvoyInput) llb.State {
	return llb.Local(envoyMount(arch), llb.SharedKeyHint("envoy-"+e.SHA256))
}

// ImageState is llb.Image(ref) with the image config's environment, working
// directory and user applied, as a Dockerfile FROM would: plain LLB does not
// read the image config, so a command would not find what the image put on
// its PATH. ref should be pinned by digest.
func ImageState(ref string, cf *v1.ConfigFile) llb.State {
	return WithImageConfig(llb.Image(ref), cf)
}

// WithImageConfig applies the environment, working directory and user of
// an image config to st.
func WithImageConfig(st llb.State, cf *v1.ConfigFile) llb.State {
	if cf == nil {
		return st
	}
	for _, e := range cf.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		st = st.AddEnv(k, v)
	}
	if cf.Config.WorkingDir != "" {
		st = st.Dir(cf.Config.WorkingDir)
	}
	if cf.Config.User != "" {
		st = st.User(cf.Config.User)
	}
	return st
}

// compileEnv is the builder image's environment plus what makes the build
// offline and reproducible.
func compileEnv(s CompileSpec) []string {
	env := map[string]string{}
	for _, e := range s.BuilderEnv {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	for k, v := range map[string]string{
		"HOME":              "/root",
		"GOCACHE":           goCacheDir,
		"GOMODCACHE":        modDir,
		"GOPROXY":           "off",
		"GOSUMDB":           "off",
		"GOTOOLCHAIN":       "local",
		"GOFLAGS":           "-mod=readonly",
		"SOURCE_DATE_EPOCH": fmt.Sprint(s.Inputs.CommitTime),
		// The source is owned by whoever fetched it; git must still read it.
		"GIT_CONFIG_COUNT":   "1",
		"GIT_CONFIG_KEY_0":   "safe.directory",
		"GIT_CONFIG_VALUE_0": "*",
	} {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// compileScript places arch's Envoy where upstream's init script looks for
// it, runs the make targets for arch as absolute paths with TARGET_ARCH
// set, and copies what the images and the packages made from arch's build
// need to dest (in /out).
func compileScript(r *recipes.Recipe, in *Inputs, arch, dest string) string {
	var b strings.Builder
	// What an earlier build left in out/ (a cache mount) is never newer
	// than anything make compares it with.
	fmt.Fprintf(&b, "find %s -type f -exec touch -h -d @0 {} +\n", makeOutDir)
	release := path.Join("out", "linux_"+arch, "release")
	if in.Envoy[arch] != nil {
		// Envoy is where upstream's make downloads it to. When an earlier
		// build left the same bytes there (out/ is a cache mount), it is
		// compared rather than written again: a real Envoy is over 100 MB,
		// twice. touch gives it the time a copy would have.
		fmt.Fprintf(&b, "mkdir -p %s\n", shq(release))
		for _, name := range []string{"envoy-" + in.ProxySHA, "envoy"} {
			dst := shq(path.Join(release, name))
			fmt.Fprintf(&b, "if cmp -s %[1]s/envoy %[2]s; then touch %[2]s; else cp %[1]s/envoy %[2]s; fi\n", envoyInDir, dst)
		}
	}
	// The go command links a binary in its work folder (GOTMPDIR) and
	// renames it to the -o path when both are on one filesystem, else
	// copies it: with the work folder in the container's root and out/ a
	// cache mount, every link was followed by a copy of the binary (85 MB
	// for pilot-discovery, about 0.1 s). What a killed build left there
	// is removed first.
	fmt.Fprintf(&b, "rm -rf %[1]s && mkdir %[1]s && export GOTMPDIR=%[1]s\n", goTmpDir)
	b.WriteString("make")
	vars := map[string]string{}
	for k, v := range r.Spec.Make.Variables {
		vars[k] = v
	}
	// Validation keeps a recipe's own TARGET_ARCH to its one platform's.
	vars[recipes.VarTargetArch] = arch
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(" " + shq(k+"="+vars[k]))
	}
	for _, t := range r.Spec.Make.TargetsFor(arch) {
		b.WriteString(" " + shq(path.Join(srcDir, t)))
	}
	b.WriteString("\n")
	seen := map[string]bool{}
	for _, f := range exportedFiles(r, arch) {
		kind, p := f.Source()
		if kind != recipes.FromBuild && kind != recipes.FromSource || seen[kind+":"+p] {
			continue
		}
		seen[kind+":"+p] = true
		dst := path.Join(dest, kind, p)
		fmt.Fprintf(&b, "mkdir -p %s && cp -L %s %s\n", shq(path.Dir(dst)), shq(path.Join(srcDir, p)), shq(dst))
	}
	return b.String()
}

// compileMounts are the local directories the compile step reads (the
// module cache and the source come from the input layer store).
func compileMounts(in *Inputs) (map[string]fsutil.FS, error) {
	dirs := map[string]string{}
	for arch, e := range in.Envoy {
		dirs[envoyMount(arch)] = e.Dir
	}
	m := map[string]fsutil.FS{}
	for name, dir := range dirs {
		if dir == "" {
			continue
		}
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", dir, err)
		}
		m[name] = fs
	}
	return m, nil
}

// logTail keeps the last bytes of the build's output, to explain failures.
type logTail struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if over := l.buf.Len() - l.max; over > 0 {
		l.buf.Next(over)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// networkHints are phrases a build prints when it tries to reach the network.
var networkHints = []string{
	"no such host", "network is unreachable", "Temporary failure in name resolution",
	"Could not resolve host", "dial tcp", "dial udp", "connection refused", "i/o timeout",
	"Failed to connect", "unable to resolve",
}

// explainFailure turns a failed compile into an error that says the build
// had no network when its output shows it tried to use one.
func explainFailure(err error, log string) error {
	// A registry that refused buildkitd (the builder image, the registry
	// cache) is said in one line: the build's log has nothing to add.
	var aerr *registry.AuthError
	if errors.As(err, &aerr) {
		return fmt.Errorf("buildkitd could not pull or push for the build: %w", err)
	}
	// A full disk or a lost buildkitd is not the build's fault, and
	// "it ran with no network" would send the reader the wrong way.
	switch {
	case noSpace(err):
		return fmt.Errorf("the build stopped because a disk is full: free space where buildkitd keeps its state (and sailmaker its state directory), then build again: %w", err)
	case buildkitLost(err):
		return fmt.Errorf("the build was cut off: the connection to buildkitd was lost (it stopped or restarted); check that it runs (buildkit.address or BUILDKIT_HOST), then build again: %w", err)
	}
	tail := tail.Lines(log, 25)
	for _, h := range networkHints {
		if strings.Contains(log, h) {
			return fmt.Errorf("the build tried to reach the network, but sailmaker builds have no network: every download must be a recipe input, fetched and verified before the build (%w)\nlast lines of the build:\n%s", err, tail)
		}
	}
	return fmt.Errorf("the build failed (it ran with no network; upstream's make targets ran in the builder image): %w\nlast lines of the build:\n%s", err, tail)
}

// noSpace tells whether err comes from a full disk (ENOSPC, also as text
// when it crossed the gRPC boundary from buildkitd).
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device")
}

// buildkitLost tells whether err means the connection to buildkitd went
// away during the solve (gRPC Unavailable, or a stream cut at EOF), as
// opposed to a solve that buildkitd ran and reported failed.
func buildkitLost(err error) bool {
	// FromError finds a status an error wraps, too.
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || strings.HasSuffix(err.Error(), "error reading from server: EOF")
}
