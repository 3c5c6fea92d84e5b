package bench

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
)

// HostGo returns a GOROOT holding Go goVersion, for the floor's host build:
// the golang.org/toolchain module (the builder image's Go comes from it
// too), from modcache where `sailmaker base build` keeps it (fetched
// through the configured GOPROXY if missing), copied out once with its
// programs made executable again: module zips do not keep file modes.
func HostGo(ctx context.Context, goVersion, modcache string, goCfg config.GoConfig) (string, error) {
	goroot := filepath.Join(filepath.Dir(modcache), "bench-goroot", "go"+goVersion)
	if _, err := os.Stat(goroot + ".ready"); err == nil {
		return goroot, nil
	}
	src, _, err := base.ToolchainModule(ctx, goVersion, modcache, goCfg.Proxy, goCfg.SumDB)
	if err != nil {
		return "", err
	}
	tmp := goroot + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := copyGoRoot(src, tmp); err != nil {
		return "", fmt.Errorf("copying Go %s out of the module cache: %w", goVersion, err)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(tmp, "bin", "go"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "go"+goVersion+" ") {
		return "", fmt.Errorf("the Go toolchain copied to %s does not run as go%s: %v %s", tmp, goVersion, err, out)
	}
	_ = os.RemoveAll(goroot)
	if err := os.Rename(tmp, goroot); err != nil {
		return "", err
	}
	return goroot, os.WriteFile(goroot+".ready", nil, 0o644)
}

// copyGoRoot copies a toolchain module tree, with base.ToolchainFileMode.
func copyGoRoot(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		mode := base.ToolchainFileMode(filepath.ToSlash(rel))
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// hostBuildEnv is the environment of the floor's make: the host Go from
// goroot, offline like sailmaker's build, with its own build cache.
func hostBuildEnv(goroot, gocache, modcache string, epoch int64) []string {
	return append(os.Environ(),
		"PATH="+filepath.Join(goroot, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOROOT="+goroot,
		"GOTOOLCHAIN=local",
		"GOENV=off",
		"GOCACHE="+gocache,
		"GOMODCACHE="+modcache,
		"GOPROXY=off",
		"GOSUMDB=off",
		"GOFLAGS=-mod=readonly",
		"GOWORK=off",
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch),
		"MAKEFLAGS=", "MAKELEVEL=",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*",
	)
}

// FloorImage lays img's files out on base in one reproducible layer (as
// sailmaker does, without its labels), written to layerFile. srcDir is the
// built source tree, envoyDir holds the verified Envoy binary.
func FloorImage(img recipes.Image, base v1.Image, srcDir, envoyDir string, epoch time.Time, layerFile string) (v1.Image, error) {
	out, cf, err := builder.Layer(img, base, func(f recipes.File) (string, error) {
		kind, rel := f.Source()
		switch kind {
		case recipes.FromBuild, recipes.FromSource:
			return filepath.Join(srcDir, filepath.FromSlash(rel)), nil
		case recipes.FromInput:
			if rel != "envoy" || envoyDir == "" {
				return "", fmt.Errorf("image %s: unknown input %q", img.Name, f.From)
			}
			return filepath.Join(envoyDir, "envoy"), nil
		}
		return "", fmt.Errorf("image %s: unknown file source %q", img.Name, f.From)
	}, layerFile, v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "bench floor: " + img.Name})
	if err != nil {
		return nil, err
	}
	return mutate.ConfigFile(out, cf)
}
