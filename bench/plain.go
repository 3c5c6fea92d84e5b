package bench

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/sailmaker/sailmaker/config"
)

// Dockerfile is the plain path's Dockerfile (this folder's Dockerfile).
//
//go:embed Dockerfile
var Dockerfile []byte

// PlainBuild is one buildctl build of one image of the plain Dockerfile.
type PlainBuild struct {
	// Target is the Dockerfile stage: pilot or proxyv2.
	Target string
	// Image is where BuildKit pushes it (registry/repository:tag).
	Image string
	// Builder and Base are image references by digest.
	Builder string
	Base    string
	// MakeArgs are upstream's make variables (VAR=value) and targets
	// (absolute paths under /src), in order.
	MakeArgs        []string
	TargetArch      string
	ProxySHA        string
	SourceDateEpoch int64
	// Local directories: the source (the build context), the folder with
	// the Dockerfile, the Go module cache and the Envoy binary's folder.
	Context, DockerfileDir, GoModCache, EnvoyDir string
	// MetadataFile is where buildctl writes what it exported (the digest).
	MetadataFile string
	// PrimeID makes the prime stage run again (a build argument in its
	// cache key): the benchmark run's id.
	PrimeID string
}

// PrimeTarget is the Dockerfile's stage that primes BuildKit: it pulls the
// builder and the base and takes in the source, the module cache and
// Envoy, and exports nothing.
const PrimeTarget = "prime"

// safeMakeArg is what a make argument may hold: the Dockerfile passes them
// to the shell unquoted.
var safeMakeArg = regexp.MustCompile(`^[A-Za-z0-9_./=:,+@%-]+$`)

// Args are buildctl's arguments after "build" (without --addr and the
// TLS flags, which come from the configuration).
func (b PlainBuild) Args() ([]string, error) {
	var errs []error
	for _, a := range b.MakeArgs {
		if !safeMakeArg.MatchString(a) {
			errs = append(errs, fmt.Errorf("make argument %q: the plain Dockerfile passes make arguments unquoted, so they may only hold letters, digits and _./=:,+@%%-", a))
		}
	}
	for name, v := range map[string]string{"target": b.Target, "image": b.Image, "builder": b.Builder, "base": b.Base,
		"context": b.Context, "dockerfile folder": b.DockerfileDir, "module cache": b.GoModCache} {
		if v == "" && (name != "image" || b.Target != PrimeTarget) {
			errs = append(errs, fmt.Errorf("plain build: no %s", name))
		}
	}
	for name, ref := range map[string]string{"builder": b.Builder, "base": b.Base} {
		if ref != "" && !strings.Contains(ref, "@sha256:") {
			errs = append(errs, fmt.Errorf("plain build: the %s %s is not pinned by digest", name, ref))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	arch := b.TargetArch
	if arch == "" {
		arch = "amd64"
	}
	args := []string{
		"--frontend", "dockerfile.v0",
		"--local", "context=" + b.Context,
		"--local", "dockerfile=" + b.DockerfileDir,
		"--local", "gomod=" + b.GoModCache,
		"--opt", "context:gomod=local:gomod",
	}
	envoy := b.EnvoyDir
	if envoy == "" {
		// proxyv2 needs it; pilot's build never reads this context.
		envoy = b.DockerfileDir
	}
	args = append(args,
		"--local", "envoy="+envoy,
		"--opt", "context:envoy=local:envoy",
		"--opt", "target="+b.Target,
		"--opt", "build-arg:BUILDER="+b.Builder,
		"--opt", "build-arg:BASE="+b.Base,
		"--opt", "build-arg:MAKE_ARGS="+strings.Join(b.MakeArgs, " "),
		"--opt", "build-arg:TARGET_ARCH="+arch,
		"--opt", "build-arg:PROXY_REPO_SHA="+b.ProxySHA,
		"--opt", fmt.Sprintf("build-arg:SOURCE_DATE_EPOCH=%d", b.SourceDateEpoch),
	)
	if b.PrimeID != "" {
		args = append(args, "--opt", "build-arg:PRIME_ID="+b.PrimeID)
	}
	if b.Image != "" {
		args = append(args, "--output", "type=image,name="+b.Image+",push=true")
	}
	args = append(args, "--progress", "rawjson")
	if b.MetadataFile != "" {
		args = append(args, "--metadata-file", b.MetadataFile)
	}
	return args, nil
}

// MakeArgs are the make variables (sorted by name) and the targets as
// absolute paths under srcRoot, as sailmaker runs them.
func MakeArgs(vars map[string]string, targets []string, srcRoot string) []string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(vars)+len(targets))
	for _, k := range keys {
		out = append(out, k+"="+vars[k])
	}
	for _, t := range targets {
		out = append(out, filepath.ToSlash(filepath.Join(srcRoot, t)))
	}
	return out
}

// buildctlArgs are the global flags that reach the configured buildkitd.
func buildctlArgs(cfg *config.Config) []string {
	args := []string{"--addr", cfg.BuildKit.Address}
	if cfg.BuildKit.CACert != "" {
		args = append(args, "--tlscacert", cfg.BuildKit.CACert)
		if cfg.BuildKit.ServerName != "" {
			args = append(args, "--tlsservername", cfg.BuildKit.ServerName)
		}
		if cfg.BuildKit.Cert != "" {
			args = append(args, "--tlscert", cfg.BuildKit.Cert, "--tlskey", cfg.BuildKit.Key)
		}
	}
	return args
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// runBuildctl runs one build, its progress written to logFile.
func runBuildctl(ctx context.Context, buildctl string, cfg *config.Config, b PlainBuild, logFile string) (buildctlRun, error) {
	args, err := b.Args()
	if err != nil {
		return buildctlRun{}, err
	}
	f, err := os.Create(logFile)
	if err != nil {
		return buildctlRun{}, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, buildctl, append(append(buildctlArgs(cfg), "build"), args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	runErr := cmd.Run()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return buildctlRun{}, err
	}
	run, perr := parseProgress(f, "gomod")
	if runErr != nil {
		msg := run.Failure
		if msg == "" {
			msg = tailFile(logFile, 1500)
		}
		return run, fmt.Errorf("buildctl build --opt target=%s: %w\n%s\n(the whole output is in %s)", b.Target, runErr, msg, logFile)
	}
	if perr != nil {
		return run, perr
	}
	if b.MetadataFile != "" {
		var md map[string]any
		data, err := os.ReadFile(b.MetadataFile)
		if err != nil {
			return run, fmt.Errorf("reading buildctl's metadata: %w", err)
		}
		if err := json.Unmarshal(data, &md); err != nil {
			return run, fmt.Errorf("reading buildctl's metadata %s: %w", b.MetadataFile, err)
		}
		run.Digest, _ = md["containerimage.digest"].(string)
	}
	return run, nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tailString(string(b), n)
}
