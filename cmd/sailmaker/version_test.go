package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/internal/version"
)

// makefilePin is BUILDKIT_VERSION in the Makefile.
func makefilePin(t *testing.T) string {
	mk, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^BUILDKIT_VERSION\s*:=\s*(\S+)$`).FindSubmatch(mk)
	require.NotNil(t, m, "BUILDKIT_VERSION in the Makefile")
	return string(m[1])
}

func TestVersionCommand(t *testing.T) {
	out, _, err := runRecipesCmd(t, "", "version", "-o", "json")
	require.NoError(t, err)
	var v version.Info
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.Equal(t, runtime.Version(), v.Go)
	assert.Equal(t, runtime.GOOS+"/"+runtime.GOARCH, v.Platform)
	assert.NotEmpty(t, v.Version)
	// The BuildKit client linked in is the Makefile's pin.
	assert.Equal(t, makefilePin(t), v.BuildKit.Module)

	out, _, err = runRecipesCmd(t, "", "version")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^go\s+`+regexp.QuoteMeta(runtime.Version())+` `, out)
	assert.Regexp(t, `(?m)^buildkit\s+`+regexp.QuoteMeta(makefilePin(t)), out)

	out, _, err = runRecipesCmd(t, "", "version", "-o", "yaml")
	require.NoError(t, err)
	assert.Contains(t, out, "go: "+runtime.Version()+"\n")

	out, _, err = runRecipesCmd(t, "", "--version")
	require.NoError(t, err)
	assert.Regexp(t, `^sailmaker \S+.* \(`+regexp.QuoteMeta(runtime.Version())+`, BuildKit `+regexp.QuoteMeta(makefilePin(t))+`\)\n$`, out)

	_, _, err = runRecipesCmd(t, "", "version", "-o", "csv")
	assert.ErrorContains(t, err, `output format "csv" does not apply here: use table, json or yaml`)
}

// makeBinary builds bin/sailmaker the way `make build` does (with the
// version stamped), into a directory of the test's own.
func makeBinary(t *testing.T) string {
	t.Helper()
	return makeBinaryIn(t, t.TempDir())
}

// makeBinaryIn is makeBinary into dir.
func makeBinaryIn(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("make", "-s", "BIN="+dir, filepath.Join(dir, "sailmaker"))
	cmd.Dir = testenv.ModuleRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return filepath.Join(dir, "sailmaker")
}

// The Makefile stamps git's description of the tree, its commit and the
// BuildKit pin into the binary.
func TestVersionStampedByMake(t *testing.T) {
	testenv.Integration(t)
	root := testenv.ModuleRoot(t)
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		require.NoError(t, err, "git %v", args)
		return strings.TrimSpace(string(out))
	}
	bin := makeBinary(t)
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	require.NoError(t, err)
	var v version.Info
	require.NoError(t, json.Unmarshal(out, &v))
	assert.Equal(t, git("rev-parse", "HEAD"), v.Commit)
	assert.Equal(t, git("describe", "--tags", "--always", "--dirty"), v.Version)
	assert.Equal(t, strings.HasSuffix(v.Version, "-dirty"), v.Modified)
	assert.Equal(t, makefilePin(t), v.BuildKit.Pinned)
	assert.Equal(t, makefilePin(t), v.BuildKit.Module)

	out, err = exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	assert.Equal(t, "sailmaker "+v.Version+" ("+v.Go+", BuildKit "+makefilePin(t)+")\n", string(out))
}
