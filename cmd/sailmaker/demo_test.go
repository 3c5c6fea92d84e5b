package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/recipes"
)

// demoConfig is the embedded defaults with a state directory of the test's
// own (symlinks resolved, as the demo's paths are).
func demoConfig(t *testing.T) *config.Config {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	cfg := config.Default()
	cfg.StateDir = dir
	cfg.Registry.Address = config.DefaultRegistryAddr
	return cfg
}

func loadDemoRecipe(t *testing.T, cfg *config.Config, file string) *recipes.Recipe {
	t.Helper()
	r, err := recipes.Load(file, recipes.WithRegistry(cfg.Registry.Address), recipes.WithAllowedRegistries(cfg.AllowedRegistries()))
	require.NoError(t, err)
	return r
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	require.NoError(t, err, "git %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

func TestPrepareDemo(t *testing.T) {
	cfg := demoConfig(t)
	src := fixture.Testdata(t, "upstream")
	demoDir := filepath.Join(cfg.StateDir, "demo")
	repoDir := filepath.Join(demoDir, "upstream")

	file, err := prepareDemo(cfg, src)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(demoDir, "recipe.yaml"), file)
	first, err := os.ReadFile(file)
	require.NoError(t, err)
	r := loadDemoRecipe(t, cfg, file)
	commit := r.Spec.Source.Commit

	file2, err := prepareDemo(cfg, src)
	require.NoError(t, err)
	assert.Equal(t, file, file2)
	second, err := os.ReadFile(file2)
	require.NoError(t, err)
	assert.Equal(t, string(first), string(second), "the same fixture gives the same recipe")
	r2 := loadDemoRecipe(t, cfg, file2)
	assert.Equal(t, commit, r2.Spec.Source.Commit, "the same fixture gives the same commit")

	// The recipe names the repository prepared, at its tag.
	assert.Equal(t, "fixture@"+fixture.DefaultTag, r2.ID())
	assert.Equal(t, "file://"+repoDir, r2.Spec.Source.Git)
	assert.Equal(t, fixture.DefaultTag, r2.Spec.Source.Tag)
	assert.Equal(t, commit, gitIn(t, repoDir, "rev-parse", "refs/tags/"+fixture.DefaultTag+"^{commit}"))
	assert.Empty(t, gitIn(t, repoDir, "status", "--porcelain"))
	assert.True(t, strings.HasPrefix(r2.Spec.Toolchain.Builder, cfg.Registry.Address+"/"), "builder %s", r2.Spec.Toolchain.Builder)
	for _, img := range r2.Spec.Images {
		assert.True(t, strings.HasPrefix(img.Base, cfg.Registry.Address+"/"), "base %s", img.Base)
	}

	// The Envoy URL is a file:// URL of the tarball written, whose sha256 the
	// recipe pins.
	e := r2.Spec.Inputs.Envoy
	require.NotNil(t, e)
	proxySHA, err := fixture.ReadProxySHA(filepath.Join(src, "istio.deps"))
	require.NoError(t, err)
	assert.Equal(t, proxySHA, e.ProxySHA)
	tarball := filepath.Join(demoDir, "artifacts", fixture.EnvoyTarballName(proxySHA))
	u, err := url.Parse(e.URL)
	require.NoError(t, err)
	assert.Equal(t, "file", u.Scheme)
	assert.Equal(t, tarball, u.Path)
	data, err := os.ReadFile(tarball)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	assert.Equal(t, hex.EncodeToString(sum[:]), e.SHA256)
	assert.False(t, e.Unconfirmed)

	// Both platforms, each with its own Envoy tarball, and the distroless
	// flavour.
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, r2.Spec.PlatformList())
	arm, ok := e.For("arm64")
	require.True(t, ok)
	armTarball := filepath.Join(demoDir, "artifacts", fixture.EnvoyTarballNameFor(proxySHA, "arm64"))
	assert.Equal(t, "file://"+armTarball, arm.URL)
	data, err = os.ReadFile(armTarball)
	require.NoError(t, err)
	sum = sha256.Sum256(data)
	assert.Equal(t, hex.EncodeToString(sum[:]), arm.SHA256)
	assert.NotEqual(t, e.SHA256, arm.SHA256)
	var names []string
	for _, img := range r2.Spec.Images {
		names = append(names, img.Name+":"+img.Tag)
	}
	assert.Equal(t, []string{"pilot:1.0.0", "proxyv2:1.0.0", "pilot-distroless:1.0.0-distroless", "proxyv2-distroless:1.0.0-distroless"}, names)

	// The benchmark's copy is for linux/amd64 alone, as its other paths.
	bench, err := prepareFixture(cfg, src, fixture.RecipeOptions{}, "recipe-amd64.yaml")
	require.NoError(t, err)
	rb := loadDemoRecipe(t, cfg, bench)
	assert.Equal(t, []string{"linux/amd64"}, rb.Spec.PlatformList())
	assert.Len(t, rb.Spec.Images, 2)
	assert.Equal(t, commit, rb.Spec.Source.Commit)
}

// copyDir copies a directory of sailmaker's testdata.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
}

// A fixture outside the module works through --fixture, and a changed one
// gives a new repository rather than an error.
func TestPrepareDemoFixtureElsewhereAndChanged(t *testing.T) {
	cfg := demoConfig(t)
	testdata := filepath.Join(t.TempDir(), "testdata")
	copyDir(t, fixture.Testdata(t, "upstream"), filepath.Join(testdata, "upstream"))
	copyDir(t, fixture.Testdata(t, fixture.EnvoyStandinDir), filepath.Join(testdata, fixture.EnvoyStandinDir))
	copyDir(t, fixture.Testdata(t, "recipes"), filepath.Join(testdata, "recipes"))
	src := filepath.Join(testdata, "upstream")

	file, err := prepareDemo(cfg, src)
	require.NoError(t, err)
	before := loadDemoRecipe(t, cfg, file).Spec.Source.Commit

	readme := filepath.Join(src, "README.md")
	old, err := os.ReadFile(readme)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(readme, append(old, "changed\n"...), 0o644))

	file, err = prepareDemo(cfg, src)
	require.NoError(t, err)
	after := loadDemoRecipe(t, cfg, file).Spec.Source.Commit
	assert.NotEqual(t, before, after)
	repoDir := filepath.Join(cfg.StateDir, "demo", "upstream")
	assert.Equal(t, after, gitIn(t, repoDir, "rev-parse", "refs/tags/"+fixture.DefaultTag+"^{commit}"))
}

func TestPrepareDemoErrors(t *testing.T) {
	cfg := demoConfig(t)

	_, err := prepareDemo(cfg, filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run it from a sailmaker checkout or pass --fixture")

	// Something that is not the demo's repository is left alone.
	repoDir := filepath.Join(cfg.StateDir, "demo", "upstream")
	require.NoError(t, os.MkdirAll(repoDir, 0o755))
	keep := filepath.Join(repoDir, "keep")
	require.NoError(t, os.WriteFile(keep, []byte("mine"), 0o644))
	_, err = prepareDemo(cfg, fixture.Testdata(t, "upstream"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a fixture git repository")
	assert.FileExists(t, keep)
}

func TestPrepareDemoWithoutGo(t *testing.T) {
	gitPath, err := exec.LookPath("git")
	require.NoError(t, err)
	bin := t.TempDir()
	require.NoError(t, os.Symlink(gitPath, filepath.Join(bin, "git")))
	src := fixture.Testdata(t, "upstream") // before PATH changes: it does not need go
	t.Setenv("PATH", bin)

	_, err = prepareDemo(demoConfig(t), src)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "go is not on PATH")
}

// runDemoCmd runs `sailmaker demo args...` through the cobra tree.
func runDemoCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("SAILMAKER_STATE_DIR", dir)
	t.Setenv("SAILMAKER_CONFIG", "")
	t.Setenv("SAILMAKER_REGISTRY", "")
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(append([]string{"--state-dir", dir, "demo"}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// The command checks its flags and its fixture before anything is built.
func TestDemoCmdRefusesEarly(t *testing.T) {
	_, _, err := runDemoCmd(t, "-o", "xml")
	assert.ErrorContains(t, err, `unknown output format "xml": use table, json, yaml or csv`)

	_, _, err = runDemoCmd(t, "--progress", "fancy")
	assert.ErrorContains(t, err, "--progress")

	_, _, err = runDemoCmd(t, "extra")
	assert.Error(t, err)

	_, _, err = runDemoCmd(t, "--fixture", filepath.Join(t.TempDir(), "nowhere"))
	assert.ErrorContains(t, err, "pass --fixture")
}

func TestEquivalentBuild(t *testing.T) {
	assert.Equal(t, "sailmaker build -f /s/demo/recipe.yaml", equivalentBuild(&globalOptions{}, "/s/demo/recipe.yaml"))
	assert.Equal(t, "sailmaker --config /c.yaml --state-dir '/my state' build -f '/my state/demo/recipe.yaml'",
		equivalentBuild(&globalOptions{configFile: "/c.yaml", stateDir: "/my state"}, "/my state/demo/recipe.yaml"))
}
