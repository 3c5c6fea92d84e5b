// Package testenv starts the real parts integration tests need: the embedded
// registry (in-process, on a free loopback port) and a buildkitd process built
// from the pinned module (bin/buildkitd), each test with its own state.
//
// Integration tests skip only under `go test -short`. Otherwise a missing
// buildkitd, runc or root is a failure, not a skip: skipped is not passed.
package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/registry"
)

// Env is a running registry and buildkitd with a config that points at them.
type Env struct {
	Config   *config.Config
	Registry *registry.Client
	Server   *registry.Server
	BuildKit *buildkitd.Daemon
}

// Integration skips the test under -short and otherwise does nothing.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs without -short (make test)")
	}
}

// ModuleRoot is the directory holding the main go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "cmd", "sailmaker")); err == nil {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "module root not found")
		dir = parent
	}
}

// Registry starts only the embedded registry, with a config pointing at it.
func Registry(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	state := t.TempDir()
	// The embedded registry logs every request (and every 404 as an error)
	// through logrus' standard logger; tests read results, not those lines.
	logrus.SetLevel(logrus.FatalLevel)
	srv, err := registry.NewServer(ctx, filepath.Join(state, "registry"))
	require.NoError(t, err)
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close(context.Background()) })

	cfg := config.Default()
	cfg.StateDir = state
	cfg.Registry.Address = srv.Addr()
	cfg.Registry.Root = filepath.Join(state, "registry")
	cfg.BuildKit.Address = "unix://" + filepath.Join(state, "no-buildkitd.sock")
	rc, err := registry.NewClient(cfg)
	require.NoError(t, err)
	return &Env{Config: cfg, Registry: rc, Server: srv}
}

// Start starts the registry and a buildkitd that may reach it over HTTP,
// and the further registries httpRegistries (host:port) too.
func Start(t testing.TB, httpRegistries ...string) *Env {
	t.Helper()
	Integration(t)
	e := Registry(t)
	if os.Getenv("SAILMAKER_BIN_DIR") == "" {
		t.Setenv("SAILMAKER_BIN_DIR", filepath.Join(ModuleRoot(t), "bin"))
	}
	// A unix socket path must stay short: keep buildkitd's directory in /tmp.
	dir, err := os.MkdirTemp("/tmp", "smbk-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(context.Background())
	d, err := buildkitd.Start(ctx, buildkitd.Options{Dir: dir, HTTPRegistries: append([]string{e.Config.Registry.Address}, httpRegistries...), GCKeepBytes: 10 << 30})
	if err != nil {
		cancel()
		require.NoError(t, err, "buildkitd must start for integration tests (make test builds bin/buildkitd and installs runc)")
	}
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		_ = d.Stop(stop)
		cancel()
	})
	e.BuildKit = d
	e.Config.BuildKit.Address = d.Address
	return e
}
