package base

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sailmaker/sailmaker/builder/layer"
)

// toolchainVersion is the golang.org/toolchain module version of a Go release.
func toolchainVersion(goVersion string) string {
	return "v0.0.1-go" + goVersion + ".linux-amd64"
}

// normalizedLayer rewrites mmdebstrap's tarball reproducibly.
func normalizedLayer(raw, out string, epoch time.Time) (v1.Layer, error) {
	f, err := os.Open(raw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return layer.Write(out, func(tw *tar.Writer) error { return layer.Copy(tw, f, epoch) })
}

// ToolchainModule fetches Go goVersion as the golang.org/toolchain module
// into the module cache modcache, through goProxy (empty: the go command's
// default), which checks it against the checksum database goSumDB (empty:
// the default). It returns the module's directory and its go.sum hash.
func ToolchainModule(ctx context.Context, goVersion, modcache, goProxy, goSumDB string) (dir, sum string, err error) {
	mod := "golang.org/toolchain@" + toolchainVersion(goVersion)
	if err := os.MkdirAll(modcache, 0o755); err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
	cmd.Dir = modcache
	cmd.Env = append(os.Environ(), "GOMODCACHE="+modcache, "GOFLAGS=-mod=mod", "GO111MODULE=on", "GONOSUMDB=", "GONOSUMCHECK=", "GOPRIVATE=", "GOINSECURE=")
	if goProxy != "" {
		cmd.Env = append(cmd.Env, "GOPROXY="+goProxy)
	}
	if goSumDB != "" {
		cmd.Env = append(cmd.Env, "GOSUMDB="+goSumDB)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct {
		Dir, Sum, Error string
	}
	_ = json.Unmarshal(stdout.Bytes(), &info)
	if runErr != nil || info.Error != "" || info.Dir == "" {
		return "", "", fmt.Errorf("fetching Go %s as module %s through GOPROXY (is the module proxy reachable? set go.proxy in the config): %v %s %s", goVersion, mod, runErr, info.Error, strings.TrimSpace(stderr.String()))
	}
	return info.Dir, info.Sum, nil
}

// ToolchainFileMode is the mode of the file rel (slash-separated) of a
// toolchain module tree. Module zips do not keep file modes, so bin/ and
// pkg/tool/ get their executable bits back, as the go command does when it
// switches toolchains.
func ToolchainFileMode(rel string) fs.FileMode {
	if strings.HasPrefix(rel, "bin/") || strings.HasPrefix(rel, "pkg/tool/") {
		return 0o755
	}
	return 0o644
}

// goToolchainLayer downloads the Go toolchain as a module and lays it out at
// /usr/local/go.
func goToolchainLayer(ctx context.Context, goVersion string, o Options, out string, epoch time.Time) (v1.Layer, string, error) {
	dir, sum, err := ToolchainModule(ctx, goVersion, filepath.Join(o.CacheDir, "toolchain-modcache"), o.GoProxy, o.GoSumDB)
	if err != nil {
		return nil, "", err
	}
	l, err := layer.Write(out, func(tw *tar.Writer) error { return writeGoRoot(tw, dir, epoch) })
	if err != nil {
		return nil, "", err
	}
	return l, sum, nil
}

// writeGoRoot writes dir as /usr/local/go, with ToolchainFileMode.
func writeGoRoot(tw *tar.Writer, dir string, epoch time.Time) error {
	for _, d := range []string{"usr/", "usr/local/"} {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}
		layer.Normalize(h, epoch)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		name := "usr/local/go"
		if rel != "." {
			name += "/" + rel
		}
		if d.IsDir() {
			h := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755}
			layer.Normalize(h, epoch)
			return tw.WriteHeader(h)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		mode := int64(ToolchainFileMode(rel))
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size()}
		layer.Normalize(h, epoch)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	})
}
