package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/testenv"
)

// sailmakerBinary builds the real binary, as make does.
func sailmakerBinary(t *testing.T) string {
	root := testenv.ModuleRoot(t)
	bin := filepath.Join(t.TempDir(), "sailmaker")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sailmaker")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// dev up starts buildkitd and the registry in the background; they outlive
// the command, a second dev up reuses them, dev down stops both.
func TestDevUpDown(t *testing.T) {
	testenv.Integration(t)
	bin := sailmakerBinary(t)
	state, err := os.MkdirTemp("/tmp", "smdev-") // a short unix socket path
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(state) })
	env := append(os.Environ(),
		"SAILMAKER_STATE_DIR="+state,
		"SAILMAKER_REGISTRY="+freeAddr(t),
		"SAILMAKER_BIN_DIR="+filepath.Join(testenv.ModuleRoot(t), "bin"),
		"SAILMAKER_CONFIG=", "BUILDKIT_HOST=")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = run("dev", "down") })

	out, err := run("dev", "up")
	require.NoError(t, err, out)
	assert.Contains(t, out, "started the embedded registry")
	assert.Contains(t, out, "started buildkitd")

	status := func() map[string]any {
		out, err := run("dev", "status", "-o", "json")
		require.NoError(t, err, out)
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &st))
		return st
	}
	st := status()
	assert.Equal(t, true, st["registryUp"])
	assert.Equal(t, true, st["buildkitUp"])

	out, err = run("dev", "up")
	require.NoError(t, err, out)
	assert.Contains(t, out, "registry already running")
	assert.Contains(t, out, "buildkitd already running")

	out, err = run("dev", "down")
	require.NoError(t, err, out)
	st = status()
	assert.Equal(t, false, st["registryUp"])
	assert.Equal(t, false, st["buildkitUp"])

	// Content survives: the registry's data is on disk in the state dir.
	_, err = os.Stat(filepath.Join(state, "registry", ".http-secret"))
	assert.NoError(t, err)
}

// A recipe that names Docker Hub is refused before anything runs: no
// registry or buildkitd is reachable here, and the error is about the image.
func TestBuildRefusesDockerHubBeforeAnythingRuns(t *testing.T) {
	dir := t.TempDir()
	for _, base := range []string{"docker.io/library/debian:bookworm", "golang:1.23"} {
		recipe := strings.ReplaceAll(dockerHubRecipe, "BASE", base)
		file := filepath.Join(dir, "r.yaml")
		require.NoError(t, os.WriteFile(file, []byte(recipe), 0o644))
		root := newRootCmd()
		root.SetArgs([]string{"--state-dir", dir, "build", "-f", file})
		var out strings.Builder
		root.SetOut(&out)
		root.SetErr(&out)
		t.Setenv("SAILMAKER_REGISTRY", "127.0.0.1:1")
		err := root.Execute()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "r.yaml:")
		assert.Regexp(t, "Docker Hub|not fully qualified", err.Error())
		assert.NotContains(t, err.Error(), "not reachable")
	}
}

const dockerHubRecipe = `apiVersion: sailmaker.dev/v1alpha1
kind: Recipe
metadata: {name: hub, version: 1.0.0}
spec:
  source: {git: "https://example.com/x.git", tag: "1.0.0", commit: "0123456789abcdef0123456789abcdef01234567"}
  toolchain: {builder: "${REGISTRY}/builder/go1.23.4:1", go: "1.23.4"}
  make: {targets: [out/linux_amd64/pilot-discovery]}
  images:
    - name: pilot
      repository: hub/pilot
      tag: "1.0.0"
      base: BASE
      files: [{from: "build:out/linux_amd64/pilot-discovery", to: /usr/local/bin/pilot-discovery}]
`
