package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/recipes"
)

// runRecipesCmd runs sailmaker with args through the cobra tree, with a state
// directory and configuration of the test's own.
func runRecipesCmd(t *testing.T, config string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("SAILMAKER_STATE_DIR", dir)
	t.Setenv("SAILMAKER_CONFIG", "")
	t.Setenv("SAILMAKER_REGISTRY", "")
	if config != "" {
		file := filepath.Join(dir, "config.yaml")
		require.NoError(t, os.WriteFile(file, []byte(config), 0o644))
		args = append([]string{"--config", file}, args...)
	}
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestRecipesList(t *testing.T) {
	out, _, err := runRecipesCmd(t, "", "recipes", "list")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6)
	assert.Regexp(t, `^ID\s+KIND\s+VERSION\s+SOURCE\s+DESCRIPTION$`, lines[0])
	assert.Regexp(t, `^istio@1\.24\.2\s+Recipe\s+1\.24\.2\s+embedded\s+istio 1\.24\.2 from https://github\.com/istio/istio\.git`, lines[1])
	assert.Regexp(t, `^base/bookworm\s+BaseImage\s+2\s+embedded\s+Debian bookworm .*\[linux/amd64, linux/arm64\]$`, lines[2])
	assert.Regexp(t, `^base/iptables\s+BaseImage\s+1\s+embedded\s+Distroless: files of Debian bookworm's .*iptables`, lines[4])

	out, _, err = runRecipesCmd(t, "", "recipes", "list", "-o", "json")
	require.NoError(t, err)
	var entries []recipes.Entry
	require.NoError(t, json.Unmarshal([]byte(out), &entries))
	assert.Equal(t, recipes.List(), entries)

	out, _, err = runRecipesCmd(t, "", "recipes", "list", "-o", "csv")
	require.NoError(t, err)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 6)
	assert.Equal(t, []string{"ID", "KIND", "VERSION", "SOURCE", "DESCRIPTION"}, rows[0])
	assert.Equal(t, []string{"istio@1.24.2", "Recipe", "1.24.2", "embedded", recipes.List()[0].Description}, rows[1])

	out, _, err = runRecipesCmd(t, "", "recipes", "list", "-o", "yaml")
	require.NoError(t, err)
	var fromYAML []recipes.Entry
	require.NoError(t, yaml.Unmarshal([]byte(out), &fromYAML))
	assert.Equal(t, recipes.List(), fromYAML)

	_, _, err = runRecipesCmd(t, "", "recipes", "list", "-o", "xml")
	assert.ErrorContains(t, err, `unknown output format "xml": use table, json, yaml or csv`)
}

func TestRecipesShow(t *testing.T) {
	out, _, err := runRecipesCmd(t, "", "recipes", "show", "istio@1.24.2")
	require.NoError(t, err)
	r, err := recipes.Get("istio@1.24.2")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "# Recipe istio@1.24.2\n# digest: "+r.Digest()+"\n# warning: "), out)
	assert.Contains(t, out, "builder: 127.0.0.1:5000/builder/go1.23.4:1")
	assert.Equal(t, 2, strings.Count(out, "base: 127.0.0.1:5000/base/bookworm:2"), "each image with its base")
	assert.Contains(t, out, "envoy-alpha-1ed7d44031746a2ad74707202464b4bfdcb38e82.tar.gz")
	assert.Contains(t, out, "unconfirmed: true")

	// The configured registry is what ${REGISTRY} expands to.
	out, _, err = runRecipesCmd(t, "registry:\n  address: registry.internal:5000\n", "recipes", "show", "istio@1.24.2", "-o", "json")
	require.NoError(t, err)
	var s struct {
		ID       string
		Kind     string
		Digest   string
		Warnings []string
		Recipe   recipes.Recipe
	}
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	assert.Equal(t, "istio@1.24.2", s.ID)
	assert.Equal(t, recipes.KindRecipe, s.Kind)
	assert.Equal(t, "registry.internal:5000/builder/go1.23.4:1", s.Recipe.Spec.Toolchain.Builder)
	assert.Equal(t, "registry.internal:5000/base/bookworm:2", s.Recipe.Spec.Images[1].Base)
	assert.NotEqual(t, r.Digest(), s.Digest)
	assert.Len(t, s.Warnings, 2, "amd64's and arm64's Envoy sha256 are unconfirmed")

	// A file, with its patch.
	file := filepath.Join("..", "..", "recipes", "testdata", "patched", "recipe.yaml")
	loaded, err := recipes.Load(file)
	require.NoError(t, err)
	out, _, err = runRecipesCmd(t, "", "recipes", "show", "-f", file)
	require.NoError(t, err)
	assert.Contains(t, out, "# file: "+file+"\n")
	assert.Contains(t, out, "# patch: patches/0001-example.patch sha256:"+loaded.Patches()[0].SHA256+"\n")
	assert.Contains(t, out, "tag: 1.24.2-patched")

	// A base image.
	out, _, err = runRecipesCmd(t, "", "recipes", "show", "base/bookworm")
	require.NoError(t, err)
	assert.Contains(t, out, "# image: 127.0.0.1:5000/base/bookworm:2\n")
	assert.Contains(t, out, "sourceDateEpoch: 1734146883")

	_, _, err = runRecipesCmd(t, "", "recipes", "show", "istio@0.1")
	assert.ErrorIs(t, err, recipes.ErrNotFound)
	assert.ErrorContains(t, err, `unknown recipe "istio@0.1" (did you mean istio@1.24.2?)`)
	_, _, err = runRecipesCmd(t, "", "recipes", "show", "nosuch")
	assert.ErrorIs(t, err, recipes.ErrNotFound)
	assert.ErrorContains(t, err, `unknown recipe "nosuch"`)
	assert.ErrorContains(t, err, "`sailmaker recipes list` lists the known ones")
	assert.NotContains(t, err.Error(), "base image \"nosuch\"", "an id without @ is not only a base image's")
	_, _, err = runRecipesCmd(t, "", "recipes", "show")
	assert.ErrorContains(t, err, "give either a recipe id or -f FILE")
	_, _, err = runRecipesCmd(t, "", "recipes", "show", "istio@1.24.2", "-f", file)
	assert.ErrorContains(t, err, "give either a recipe id or -f FILE")
	_, _, err = runRecipesCmd(t, "", "recipes", "show", "istio@1.24.2", "-o", "toml")
	assert.ErrorContains(t, err, `unknown output format "toml": use table, json or yaml`)
	_, _, err = runRecipesCmd(t, "", "recipes", "show", "istio@1.24.2", "-o", "csv")
	assert.ErrorContains(t, err, `output format "csv" does not apply here: use table, json or yaml`)

	// -o yaml is the JSON document in YAML.
	out, _, err = runRecipesCmd(t, "", "recipes", "show", "istio@1.24.2", "-o", "yaml")
	require.NoError(t, err)
	var y struct {
		ID     string         `yaml:"id"`
		Digest string         `yaml:"digest"`
		Recipe recipes.Recipe `yaml:"recipe"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(out), &y))
	assert.Equal(t, "istio@1.24.2", y.ID)
	assert.Equal(t, r.Digest(), y.Digest)
	assert.Equal(t, "127.0.0.1:5000/builder/go1.23.4:1", y.Recipe.Spec.Toolchain.Builder)
}

func TestRecipesValidate(t *testing.T) {
	testdata := filepath.Join("..", "..", "recipes", "testdata")
	good := filepath.Join(testdata, "patched", "recipe.yaml")
	base := filepath.Join(testdata, "base.yaml")
	embedded := filepath.Join("..", "..", "recipes", "istio", "1.24.2.yaml")
	out, _, err := runRecipesCmd(t, "", "recipes", "validate", good, base, embedded)
	require.NoError(t, err)
	assert.Contains(t, out, good+": ok: istio@1.24.2 sha256:")
	assert.Contains(t, out, base+": ok: base/test:2 sha256:")
	assert.Contains(t, out, embedded+": ok: istio@1.24.2 sha256:")
	assert.Contains(t, out, "  warning: "+embedded+":44: spec.inputs.envoy.unconfirmed: ")
	assert.Contains(t, out, "  warning: "+embedded+":49: spec.inputs.envoy.arch.arm64.unconfirmed: ")

	bad := filepath.Join(testdata, "invalid.yaml")
	out, _, err = runRecipesCmd(t, "", "recipes", "validate", good, bad, filepath.Join(testdata, "missing.yaml"))
	assert.EqualError(t, err, "2 of 3 recipe files are invalid")
	assert.Contains(t, out, bad+":12: spec.toolchain.builder: ")
	assert.Contains(t, out, bad+":20: spec.inputs.envoy.sha256: must be 64 lowercase hex digits\n")
	assert.Contains(t, out, bad+":26: spec.images[0].base: ")
	assert.Contains(t, out, "missing.yaml: reading recipe: ")

	// An allowed registry makes a reference valid.
	dir := t.TempDir()
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	mirrored := filepath.Join(dir, "recipe.yaml")
	require.NoError(t, os.WriteFile(mirrored, bytes.Replace(data, []byte("${REGISTRY}/base/bookworm:2"), []byte("mirror.internal/base/bookworm:2"), 1), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(dir, "patches"), os.DirFS(filepath.Join(testdata, "patched", "patches"))))
	_, _, err = runRecipesCmd(t, "", "recipes", "validate", mirrored)
	assert.Error(t, err)
	_, _, err = runRecipesCmd(t, "registry:\n  allow: [mirror.internal]\n", "recipes", "validate", mirrored)
	assert.NoError(t, err)

	_, _, err = runRecipesCmd(t, "", "recipes", "validate")
	assert.Error(t, err)
}

func TestRecipesNew(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	src := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return strings.TrimSpace(string(out))
	}
	git("init", "--quiet")
	require.NoError(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte("module istio.io/istio\n\ngo 1.23.0\n\ntoolchain go1.23.4\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "istio.deps"), []byte(`[{"name": "PROXY_REPO_SHA", "repoName": "proxy", "lastStableSHA": "1ed7d44031746a2ad74707202464b4bfdcb38e82"}]`), 0o644))
	git("add", ".")
	git("commit", "--quiet", "-m", "release")
	git("tag", "1.25.0")
	commit := git("rev-parse", "HEAD")

	// The URL in the recipe is the upstream one; the mirror is fetched.
	config := "git:\n  mirrors:\n    - url: file://" + src + "\n      insteadOf: https://github.com/istio/istio.git\n"
	out, stderr, err := runRecipesCmd(t, config, "recipes", "new", "--from", "https://github.com/istio/istio.git", "--tag", "1.25.0")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "git: https://github.com/istio/istio.git\n")
	assert.Contains(t, out, "commit: "+commit+"\n")
	assert.Contains(t, out, "builder: ${REGISTRY}/builder/go1.23.4:1\n")
	assert.Contains(t, stderr, "Wrote recipe istio@1.25.0 to stdout: tag 1.25.0 is commit "+commit)
	assert.Contains(t, stderr, "Fetched from the mirror file://"+src)
	assert.Contains(t, stderr, "To confirm before building:\n  - spec.inputs.envoy.unconfirmed: ")
	r, err := recipes.Parse("new.yaml", []byte(out))
	require.NoError(t, err, out)
	assert.True(t, r.Spec.Inputs.Envoy.Unconfirmed)

	file := filepath.Join(t.TempDir(), "istio-1.25.0.yaml")
	sum := strings.Repeat("0f", 32)
	out, stderr, err = runRecipesCmd(t, "", "recipes", "new", "--from", "file://"+src, "--tag", "1.25.0", "--envoy-sha256", sum, "--out", file)
	require.NoError(t, err, stderr)
	assert.Empty(t, out)
	assert.Contains(t, stderr, "to "+file)
	assert.NotContains(t, stderr, "unconfirmed")
	r, err = recipes.Load(file)
	require.NoError(t, err)
	assert.Equal(t, sum, r.Spec.Inputs.Envoy.SHA256)

	_, _, err = runRecipesCmd(t, "", "recipes", "new", "--tag", "1.25.0")
	assert.ErrorContains(t, err, `"from" not set`)
	_, _, err = runRecipesCmd(t, "", "recipes", "new", "--from", "file://"+src, "--tag", "9.9.9")
	assert.ErrorContains(t, err, "fetching tag 9.9.9")
}

func TestRecipesCommandsHaveExamples(t *testing.T) {
	cmd := newRecipesCmd(&globalOptions{})
	assert.NotEmpty(t, cmd.Example)
	for _, sub := range cmd.Commands() {
		assert.NotEmpty(t, sub.Example, sub.Name())
	}
}
