// Package fakeistio builds small stand-ins for Istio's istioctl and
// istio-cni (source in testdata/src, module istio.io/istio), stamped with a
// version the way upstream's make stamps its binaries, for tests of the
// Debian packages: two istioctl of different versions side by side without
// compiling Istio.
package fakeistio

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Commands: the package path (relative to the module) of each stand-in.
var Commands = map[string]string{
	"istioctl":  "./istioctl/cmd/istioctl",
	"istio-cni": "./cni/cmd/istio-cni",
}

// SourceDir is the stand-ins' module.
func SourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "src")
}

// DefaultRevision is the git revision Build stamps in.
const DefaultRevision = "0123456789abcdef0123456789abcdef01234567"

// Build compiles command ("istioctl" or "istio-cni") for linux/goarch with
// version stamped in (-X istio.io/istio/pkg/version.buildVersion), static
// and stripped with -trimpath like upstream's gobuild.sh, into
// outDir/<command>, and returns that path.
func Build(ctx context.Context, outDir, command, version, goarch string) (string, error) {
	return BuildRevision(ctx, outDir, command, version, DefaultRevision, goarch)
}

// BuildRevision is Build with another git revision stamped in: the same
// version, other bytes (a rebuild from a patched source).
func BuildRevision(ctx context.Context, outDir, command, version, revision, goarch string) (string, error) {
	pkg, ok := Commands[command]
	if !ok {
		return "", fmt.Errorf("fakeistio: no stand-in for %q", command)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(outDir, command)
	ldflags := "-s -w -X istio.io/istio/pkg/version.buildVersion=" + version +
		" -X istio.io/istio/pkg/version.buildGitRevision=" + revision
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = SourceDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the %s stand-in %s: %w\n%s", command, version, err, b)
	}
	return out, nil
}
