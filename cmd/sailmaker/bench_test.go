package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bad flags are refused before anything is set up (no registry or
// buildkitd is running here).
func TestBenchRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--scenarios", "cold,warm"}, `unknown scenario "warm"`},
		{[]string{"bench", "--paths", "docker"}, `unknown path "docker"`},
		{[]string{"bench", "-o", "yaml"}, `-o: output format "yaml" does not apply here: use table or json`},
		{[]string{"bench", "--recipe", "istio@1.24.2", "-f", "r.yaml"}, "--recipe and -f both name a recipe"},
		{[]string{"bench", "--recipe", "istio@9.9"}, "no such recipe"},
		{[]string{"bench", "--fixture", "/nonexistent"}, "no demo fixture at /nonexistent"},
		{[]string{"bench", "--runs", "0"}, "--runs 0, --cold-runs 1: each must be at least 1"},
	} {
		_, _, err := runRecipesCmd(t, "", tc.args...)
		assert.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
}

// With the registry not answering, the run stops at once and says so; the
// results it writes say why.
func TestBenchNeedsTheRegistry(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	_, _, err := runRecipesCmd(t, "registry:\n  address: 127.0.0.1:1\n", "bench", "--fixture", "../../testdata/upstream", "--buildctl", "/bin/true", "--out", out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "registry 127.0.0.1:1 is not reachable")
	data, rerr := os.ReadFile(filepath.Join(out, "results.json"))
	require.NoError(t, rerr)
	assert.Contains(t, string(data), "is not reachable")
	assert.FileExists(t, filepath.Join(out, "results.md"))
}

func TestFindBuildctl(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "buildctl")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	t.Setenv("SAILMAKER_BIN_DIR", dir)
	assert.Equal(t, p, findBuildctl())
}
