package testenv

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// Distribution starts Debian's docker-registry (the distribution registry
// 2.8, an independent server without the OCI referrers API) on a free
// loopback port, deletes enabled, and returns its host:port. It is stopped
// when the test ends. A missing docker-registry fails the test (`make deps`
// installs it).
func Distribution(t testing.TB) string {
	t.Helper()
	return DistributionWith(t, DistributionOptions{})
}

// DistributionOptions say how DistributionWith starts docker-registry.
type DistributionOptions struct {
	// User and Password, if set, put the registry behind HTTP basic auth
	// (htpasswd, bcrypt) with this one account: every request needs them.
	User, Password string
	// Log, if set, receives the registry's log at info level: one line per
	// request, with its method, path, user agent and authenticated user.
	Log io.Writer
}

// DistributionWith is Distribution as o says.
func DistributionWith(t testing.TB, o DistributionOptions) string {
	t.Helper()
	Integration(t)
	bin, err := exec.LookPath("docker-registry")
	require.NoError(t, err, "docker-registry is installed by `make deps` (Debian package docker-registry)")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := t.TempDir()
	level, out := "error", io.Discard
	if o.Log != nil {
		level, out = "info", o.Log
	}
	auth := ""
	if o.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.Password), bcrypt.MinCost)
		require.NoError(t, err)
		htpasswd := filepath.Join(dir, "htpasswd")
		require.NoError(t, os.WriteFile(htpasswd, []byte(o.User+":"+string(hash)+"\n"), 0o600))
		auth = fmt.Sprintf("auth:\n  htpasswd: {realm: sailmaker-test, path: %s}\n", htpasswd)
	}
	cfg := filepath.Join(dir, "config.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log: {level: %s, formatter: text}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: %s
%s`, level, filepath.Join(dir, "data"), addr, auth)), 0o644))
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not start on %s", addr)
	return ""
}
