package builder_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/moby/buildkit/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// fakeBases pushes small stand-ins for the builder and base images: these
// tests stop before anything would run in them.
func fakeBases(t *testing.T, e *testenv.Env) {
	ctx := context.Background()
	for _, n := range []string{"builder/go1.23.4", "base/bookworm"} {
		img, err := random.Image(64, 1)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		cf.Config.Labels = map[string]string{base.LabelGoVersion: "1.23.4"}
		cf.OS, cf.Architecture = "linux", "amd64"
		img, err = mutate.ConfigFile(img, cf)
		require.NoError(t, err)
		b, err := recipes.GetBase(n)
		require.NoError(t, err)
		tag, err := e.Registry.Tag(n, b.Metadata.Version)
		require.NoError(t, err)
		_, err = e.Registry.PushAll(ctx, []registry.Pending{{Tag: tag, Image: img}}, false)
		require.NoError(t, err)
	}
}

type setup struct {
	env   *testenv.Env
	repo  *fixture.Repo
	envoy []byte
	sum   string
	srv   *fixture.ArtifactServer
}

func newSetup(t *testing.T) *setup {
	e := testenv.Registry(t)
	// No buildkitd answers here: these failures must come before BuildKit.
	fakeBases(t, e)
	repo := fixture.Upstream(t, fixture.UpstreamOptions{})
	envoy, sum := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	return &setup{env: e, repo: repo, envoy: envoy, sum: sum, srv: srv}
}

func (s *setup) recipe(t *testing.T, envoySHA string) *recipes.Recipe {
	file := fixture.WriteRecipe(t, s.repo, s.srv.URL+"/envoy/", envoySHA, s.env.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(s.env.Config.Registry.Address))
	require.NoError(t, err)
	return r
}

func (s *setup) build(t *testing.T, r *recipes.Recipe, req builder.Request) error {
	_, err := newBuilder(t, s.env).Build(context.Background(), r, req)
	return err
}

// newBuilder is a builder whose BuildKit client leads nowhere: these tests
// end before anything is solved.
func newBuilder(t *testing.T, e *testenv.Env) *builder.Builder {
	bk, err := client.New(context.Background(), "unix://"+filepath.Join(t.TempDir(), "no-buildkitd.sock"))
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	b, err := builder.New(e.Config, e.Registry, builder.WithBuildKit(bk))
	require.NoError(t, err)
	return b
}

func TestWrongEnvoyChecksumFailsBeforeBuildKit(t *testing.T) {
	s := newSetup(t)
	wrong := strings.Repeat("ab", 32)
	err := s.build(t, s.recipe(t, wrong), builder.Request{})
	require.ErrorIs(t, err, builder.ErrChecksum)
	assert.Contains(t, err.Error(), s.sum, "names the artifact's real sum")
	assert.Contains(t, err.Error(), wrong, "names the pinned sum")
	assert.Contains(t, err.Error(), fixture.EnvoyTarballName(s.repo.ProxySHA), "names the file")
	assert.NotContains(t, err.Error(), "buildkitd")
}

func TestEnvoyFileIsCheckedToo(t *testing.T) {
	s := newSetup(t)
	other, _ := fixture.EnvoyTarball(t, strings.Repeat("0", 40))
	p := t.TempDir() + "/envoy.tar.gz"
	require.NoError(t, writeFile(p, append(other, 0)))
	err := s.build(t, s.recipe(t, s.sum), builder.Request{EnvoyFile: p})
	require.ErrorIs(t, err, builder.ErrChecksum)
	assert.Contains(t, err.Error(), p)
}

func TestUnconfirmedEnvoyNeedsAChecksum(t *testing.T) {
	s := newSetup(t)
	err := s.build(t, s.recipe(t, ""), builder.Request{})
	require.ErrorContains(t, err, "unconfirmed")
	require.ErrorContains(t, err, "--envoy-sha256")
}

func TestMovedTagIsRefused(t *testing.T) {
	s := newSetup(t)
	r := s.recipe(t, s.sum)
	s.repo.MoveTag(t, "retag the release")
	err := s.build(t, r, builder.Request{})
	require.ErrorIs(t, err, builder.ErrUpstreamTagMoved)
	assert.Contains(t, err.Error(), s.repo.Commit, "names where the tag points now")
	assert.Contains(t, err.Error(), r.Spec.Source.Commit, "names the pinned commit")
}

func TestProxySHAMustMatchIstioDeps(t *testing.T) {
	s := newSetup(t)
	s.repo.ProxySHA = strings.Repeat("1", 40) // the recipe now pins another Envoy build
	err := s.build(t, s.recipe(t, s.sum), builder.Request{})
	require.ErrorContains(t, err, "PROXY_REPO_SHA")
}

func TestMissingBaseImageSaysHowToBuildIt(t *testing.T) {
	e := testenv.Registry(t)
	repo := fixture.Upstream(t, fixture.UpstreamOptions{})
	file := fixture.WriteRecipe(t, repo, "http://127.0.0.1:1/", strings.Repeat("a", 64), e.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)
	_, err = newBuilder(t, e).Build(context.Background(), r, builder.Request{})
	require.ErrorContains(t, err, "sailmaker base build")
}

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }

// Patches are applied in order with git apply; one that does not apply
// stops the build before BuildKit.
func TestPatches(t *testing.T) {
	s := newSetup(t)
	dir := t.TempDir()
	readme, err := os.ReadFile(filepath.Join(s.repo.Dir, "README.md"))
	require.NoError(t, err)
	lines := strings.SplitAfter(strings.TrimSuffix(string(readme), "\n"), "\n")
	good := fmt.Sprintf("--- a/README.md\n+++ b/README.md\n@@ -1,%d +1,%d @@\n", len(lines), len(lines)+1)
	for _, l := range lines {
		good += " " + strings.TrimSuffix(l, "\n") + "\n"
	}
	good += "+patched by sailmaker\n"
	bad := "--- a/no-such-file\n+++ b/no-such-file\n@@ -1 +1 @@\n-x\n+y\n"
	yaml := fixture.RecipeYAML(s.repo, s.srv.URL+"/envoy/", s.sum, s.env.Config.Registry.Address)
	for name, patch := range map[string]string{"good": good, "bad": bad} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".patch"), []byte(patch), 0o644))
	}
	withPatch := func(p string) *recipes.Recipe {
		y := strings.Replace(yaml, "    commit: ", "    patches: ["+p+"]\n    commit: ", 1)
		f := filepath.Join(dir, "recipe-"+p+".yaml")
		require.NoError(t, os.WriteFile(f, []byte(y), 0o644))
		r, err := recipes.Load(f, recipes.WithRegistry(s.env.Config.Registry.Address))
		require.NoError(t, err)
		return r
	}
	err = s.build(t, withPatch("bad.patch"), builder.Request{})
	require.ErrorContains(t, err, "bad.patch does not apply")

	in, err := builder.FetchInputs(context.Background(), withPatch("good.patch"), builder.InputOptions{Config: s.env.Config})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(in.SourceDir, "README.md"))
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(b), "patched by sailmaker\n"), "patched")
	_, err = os.Stat(filepath.Join(in.SourceDir, ".git"))
	assert.NoError(t, err, "the checkout keeps .git for upstream's version stamping")

	// The patched checkout is made of hard links to the commit's: patching
	// it left the commit's checkout as it was.
	f := filepath.Join(dir, "recipe.yaml")
	require.NoError(t, os.WriteFile(f, []byte(yaml), 0o644))
	plain, err := recipes.Load(f, recipes.WithRegistry(s.env.Config.Registry.Address))
	require.NoError(t, err)
	pin, err := builder.FetchInputs(context.Background(), plain, builder.InputOptions{Config: s.env.Config})
	require.NoError(t, err)
	assert.NotEqual(t, pin.SourceDir, in.SourceDir)
	b, err = os.ReadFile(filepath.Join(pin.SourceDir, "README.md"))
	require.NoError(t, err)
	assert.Equal(t, string(readme), string(b), "the commit's checkout is unpatched")
	// The input layers: the patched source is the commit's layer and one
	// of what the patch changed; the module cache is the same.
	assert.Equal(t, pin.ModLayer, in.ModLayer)
	assert.NotEqual(t, pin.SourceLayer.Manifest, in.SourceLayer.Manifest)
	assert.Less(t, in.SourceLayer.Size-pin.SourceLayer.Size, int64(16<<10), "the patch layer holds only README.md")
}

func TestMergeEnv(t *testing.T) {
	assert.Equal(t, []string{"A=1", "B=x", "C=3", "D=4"}, builder.MergeEnv([]string{"A=1", "B=2"}, map[string]string{"D": "4", "B": "x", "C": "3"}))
	assert.Empty(t, builder.MergeEnv(nil, nil))
}
