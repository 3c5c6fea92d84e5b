package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
)

// Bad flags are refused before anything else happens: the registry and
// buildkitd named here do not exist, and no error speaks of them.
func TestBuildFlagsCheckedFirst(t *testing.T) {
	t.Setenv("SAILMAKER_REGISTRY", "127.0.0.1:1")
	t.Setenv("BUILDKIT_HOST", "unix:///nonexistent/buildkitd.sock")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "xml"}, `unknown output format "xml": use table, json, yaml or csv`},
		{[]string{"--output", "s3=bucket"}, `--output "s3=bucket": unknown output`},
		{[]string{"--output", "tar"}, `tar needs a path: tar=FILE`},
		{[]string{"--output", "registry=foo"}, `registry takes no path`},
		{[]string{"--output", "apt"}, `apt needs a path: apt=DIR`},
		{[]string{"--output", "tar=a.tar", "--output", "tar=a.tar"}, `is given twice`},
		{[]string{"--metadata-file", "/nonexistent/dir/meta.json"}, `--metadata-file /nonexistent/dir/meta.json: its directory does not exist`},
		{[]string{"--progress", "fancy"}, `--progress "fancy"`},
		{[]string{"--platform", "linux/s390x"}, `--platform "linux/s390x": unknown platform`},
		{[]string{"--envoy-sha256", "arm64=abc"}, `--envoy-sha256 arm64=abc: must be 64 hex digits`},
		{[]string{"--envoy-sha256", strings.Repeat("a", 64), "--envoy-sha256", strings.Repeat("b", 64)}, `--envoy-sha256: amd64's is given twice`},
		// What does not fit the recipe (istio@1.24.2 builds linux/amd64 and
		// linux/arm64) is refused before the registry is asked.
		{[]string{"--output", "tar=images.tar"}, `a docker archive holds one image per tag: add --platform`},
		{[]string{"--platform", "linux/arm64", "--envoy-sha256", strings.Repeat("a", 64)}, `are amd64's, and this build is for linux/arm64 only`},
	} {
		_, _, err := runCLI(t, t.TempDir(), append([]string{"build", "istio@1.24.2"}, c.args...)...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want, "%v", c.args)
		assert.NotContains(t, err.Error(), "127.0.0.1:1", "checked before the registry is asked")
	}
}

// recipeSetup is a fixture recipe whose Envoy comes from a counting
// artifact server, in a registry with stand-in builder and base images.
type recipeSetup struct {
	env  *testenv.Env
	file string
	srv  *fixture.ArtifactServer
}

func newRecipeSetup(t *testing.T) *recipeSetup {
	e := testenv.Registry(t)
	for _, n := range []string{"builder/go1.23.4", "base/bookworm"} {
		img, err := random.Image(64, 1)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		cf.Config.Labels = map[string]string{base.LabelGoVersion: "1.23.4"}
		img, err = mutate.ConfigFile(img, cf)
		require.NoError(t, err)
		tag, err := e.Registry.Tag(n, "1")
		require.NoError(t, err)
		_, err = e.Registry.PushAll(context.Background(), []registry.Pending{{Tag: tag, Image: img}}, false)
		require.NoError(t, err)
	}
	repo := fixture.Upstream(t, fixture.UpstreamOptions{})
	envoy, sum := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	file := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", sum, e.Config.Registry.Address)
	t.Setenv("SAILMAKER_REGISTRY", e.Config.Registry.Address)
	t.Setenv("SAILMAKER_SIGNING_KEY", "")
	return &recipeSetup{env: e, file: file, srv: srv}
}

// BuildKit is asked first: with no daemon, the build fails at once,
// before the source, the modules or Envoy are fetched.
func TestBuildDialsBuildKitFirst(t *testing.T) {
	s := newRecipeSetup(t)
	state := t.TempDir()
	t.Setenv("BUILDKIT_HOST", "unix://"+filepath.Join(state, "no-buildkitd.sock"))
	start := time.Now()
	_, _, err := runCLI(t, state, "build", "-f", s.file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "buildkitd")
	assert.Zero(t, s.srv.TotalHits(), "nothing was downloaded")
	_, statErr := os.Stat(filepath.Join(state, "cache", "git"))
	assert.True(t, os.IsNotExist(statErr), "no source was fetched")
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// A signing key that cannot be used stops the build before anything is
// fetched, and says which setting is wrong.
func TestBuildBadSigningKeyFailsFirst(t *testing.T) {
	s := newRecipeSetup(t)
	missing := filepath.Join(t.TempDir(), "nope.key")
	t.Setenv("SAILMAKER_SIGNING_KEY", missing)
	_, _, err := runCLI(t, t.TempDir(), "build", "-f", s.file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "signing.key")
	assert.Contains(t, err.Error(), missing)

	notKey := filepath.Join(t.TempDir(), "cert.pem")
	require.NoError(t, os.WriteFile(notKey, []byte("hello"), 0o600))
	t.Setenv("SAILMAKER_SIGNING_KEY", notKey)
	_, _, err = runCLI(t, t.TempDir(), "build", "-f", s.file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a PEM file")
	assert.Zero(t, s.srv.TotalHits(), "nothing was fetched")
}

// An apt repository output needs the OpenPGP key, checked before anything
// is fetched; a bad retention setting stops the build as the config is read.
func TestBuildAptOutputNeedsItsKeyFirst(t *testing.T) {
	s := newRecipeSetup(t)
	t.Setenv("SAILMAKER_APT_KEY", "")
	_, _, err := runCLI(t, t.TempDir(), "build", "-f", s.file, "--output", "apt="+t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "an apt repository is signed with an OpenPGP key: set signing.aptKey ($SAILMAKER_APT_KEY)")
	missing := filepath.Join(t.TempDir(), "nope.asc")
	t.Setenv("SAILMAKER_APT_KEY", missing)
	_, _, err = runCLI(t, t.TempDir(), "build", "-f", s.file, "--output", "registry", "--output", "apt="+t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "signing.aptKey")
	assert.Contains(t, err.Error(), missing)
	t.Setenv("SAILMAKER_APT_KEY", "")
	t.Setenv("SAILMAKER_ISTIOCTL_RETENTION", "newest=2")
	_, _, err = runCLI(t, t.TempDir(), "build", "-f", s.file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `packages.istioctlRetention (from $SAILMAKER_ISTIOCTL_RETENTION) retention "newest=2": give all, newest-per-minor=N or versions=V1,V2,...`)
	assert.Zero(t, s.srv.TotalHits(), "nothing was fetched")
}

// -q prints repository@digest lines; -o yaml and csv print every field;
// --metadata-file has buildx's keys.
func TestPrintResult(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	res := api.Result{Recipe: "istio@1.24.2", Images: []api.Image{
		{Name: "pilot", Output: "registry", Repository: "reg.local/istio/pilot", Tag: "1.24.2", Reference: "reg.local/istio/pilot@" + d("1"), Digest: d("1"), Platforms: []string{"linux/amd64"}, Provenance: d("2"), Status: api.StatusPushed},
		{Name: "pilot", Output: "tar:/tmp/x.tar", Repository: "reg.local/istio/pilot", Tag: "1.24.2", Reference: "reg.local/istio/pilot@" + d("1"), Digest: d("1"), Status: api.StatusWritten},
		{Name: "proxyv2", Output: "registry", Repository: "reg.local/istio/proxyv2", Tag: "1.24.2", Reference: "reg.local/istio/proxyv2@" + d("3"), Digest: d("3"), Status: api.StatusMoved, PreviousDigest: d("4")},
	}}
	var out strings.Builder
	require.NoError(t, printResult(&out, res, &buildOptions{quiet: true, format: format(t, "table")}))
	assert.Equal(t, "reg.local/istio/pilot@"+d("1")+"\nreg.local/istio/proxyv2@"+d("3")+"\n", out.String())

	out.Reset()
	require.NoError(t, printResult(&out, res, &buildOptions{format: format(t, "table")}))
	assert.Contains(t, out.String(), "OUTPUT")
	assert.Contains(t, out.String(), "pushed (tag moved by --force)")

	out.Reset()
	require.NoError(t, printResult(&out, res, &buildOptions{format: format(t, "yaml")}))
	assert.Contains(t, out.String(), "recipe: istio@1.24.2")
	assert.Contains(t, out.String(), "previousDigest: "+d("4"))

	out.Reset()
	require.NoError(t, printResult(&out, res, &buildOptions{format: format(t, "csv")}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4)
	assert.True(t, strings.HasPrefix(lines[0], "name,output,repository,tag,digest"))

	meta := filepath.Join(t.TempDir(), "meta.json")
	out.Reset()
	require.NoError(t, printResult(&out, res, &buildOptions{format: format(t, "json"), metadataFile: meta}))
	var doc map[string]map[string]any
	b, err := os.ReadFile(meta)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, "reg.local/istio/pilot:1.24.2", doc["pilot"]["image.name"])
	assert.Equal(t, d("1"), doc["pilot"]["containerimage.digest"])
	assert.Equal(t, []any{"linux/amd64"}, doc["pilot"]["platforms"])
	assert.Equal(t, d("2"), doc["pilot"]["provenance"])
	assert.Len(t, doc["pilot"]["outputs"], 2)
	var back api.Result
	require.NoError(t, json.Unmarshal([]byte(out.String()), &back))
	assert.Equal(t, res.Images, back.Images)
}

// format is a build's -o set to f.
func format(t *testing.T, f string) *outputFlag {
	t.Helper()
	o := &outputFlag{format: output.Table, allowed: output.Formats}
	require.NoError(t, o.Set(f))
	return o
}

// A recipe whose packages are wrong is refused with the file, the line and
// the field, before anything is dialled: no registry, no buildkitd.
func TestBuildRefusesBadPackagesFirst(t *testing.T) {
	addr, dialled := countingListener(t)
	t.Setenv("SAILMAKER_REGISTRY", addr)
	t.Setenv("BUILDKIT_HOST", "tcp://"+addr)
	repo := fixture.Upstream(t, fixture.UpstreamOptions{})
	text := fixture.RecipeYAML(repo, "http://127.0.0.1:1/envoy/", strings.Repeat("a", 64), addr)
	for _, c := range []struct{ old, new, want string }{
		{"to: /opt/cni/bin/istio-cni", "to: /opt/../../etc/cron.d/x", `spec.packages[0].files[0].to: "/opt/../../etc/cron.d/x": contains '..': a path must stay inside the package root`},
		{"version: ${VERSION}-1", "version: ${VERSION}_1", `spec.packages[0].version: "1.0.0_1" is not a version dpkg accepts`},
		{"      - out/linux_amd64/istio-cni\n", "", `spec.packages[0].files[0].from: build:out/linux_amd64/istio-cni is not one of spec.make.targets`},
		{"          to: /opt/cni/bin/istio-cni\n", "          to: /opt/cni/bin/istio-cni\n        - from: build:out/linux_amd64/istioctl\n          to: /opt/cni/bin/istio-cni\n", `spec.packages[0].files[1].to: /opt/cni/bin/istio-cni is already the path of files[0]`},
	} {
		require.Contains(t, text, c.old)
		file := filepath.Join(t.TempDir(), "bad.yaml")
		require.NoError(t, os.WriteFile(file, []byte(strings.Replace(text, c.old, c.new, 1)), 0o644))
		_, _, err := runCLI(t, t.TempDir(), "build", "-f", file)
		require.Error(t, err)
		assert.Regexp(t, regexp.QuoteMeta(file)+`:\d+: `+regexp.QuoteMeta(c.want), err.Error())
	}
	assert.Zero(t, dialled.Load(), "nothing was dialled")
}
