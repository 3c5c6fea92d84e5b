package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
)

// fileFromImage reads one file from an image's flattened filesystem.
func fileFromImage(t *testing.T, img v1.Image, p string) ([]byte, *tar.Header) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	want := strings.TrimPrefix(p, "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s is not in the image", p)
		}
		require.NoError(t, err)
		if strings.TrimPrefix(h.Name, "./") == want {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			return b, h
		}
	}
}

// runBinary writes a static binary taken from an image to disk and runs it.
func runBinary(t *testing.T, data []byte, args ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.WriteFile(p, data, 0o755))
	out, err := exec.Command(p, args...).CombinedOutput()
	require.NoError(t, err, string(out))
	return strings.TrimSpace(string(out))
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// The fixture recipe end to end: real buildkitd, real registry, the images'
// binaries run and report the recipe's VERSION, proxyv2 holds the pinned
// Envoy; its packages (istio-cni, this release's istioctl, and the
// istioctl-versions package made after the push) are OCI artifacts that
// dpkg-deb and lintian accept; a second build from the same inputs pushes
// nothing; a build with no cache gives the same digests, so the same .debs.
func TestBuildFixtureEndToEnd(t *testing.T) {
	e := testenv.Start(t)
	bases := e.Bases(t)
	ctx := context.Background()

	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	file := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, e.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)

	res, err := buildAndPublish(t, e, r, builder.Request{}, publish.Settings{})
	require.NoError(t, err)
	require.False(t, res.UpToDate)
	require.Len(t, res.Published, 5, "two images, istio-cni, istioctl, istioctl-versions")

	pilotRes, proxyRes := res.Published[0], res.Published[1]
	assert.Equal(t, e.Config.Registry.Address+"/fixture/pilot", pilotRes.Repository)
	assert.Equal(t, "1.0.0", pilotRes.Tag)
	assert.Equal(t, api.StatusPushed, pilotRes.Status)
	pilot := imageAt(t, e, pilotRes.Repository+":"+pilotRes.Tag)
	proxy := imageAt(t, e, proxyRes.Repository+":"+proxyRes.Tag)
	assert.Equal(t, pilotRes.Digest, digestOf(t, pilot))

	// The binaries report the recipe's VERSION and the pinned commit.
	bin, h := fileFromImage(t, pilot, "/usr/local/bin/pilot-discovery")
	assert.EqualValues(t, 0o755, h.Mode&0o777)
	assert.Equal(t, "1.0.0", runBinary(t, bin, "version", "--short"))
	assert.Contains(t, runBinary(t, bin, "version"), repo.Commit)
	agent, _ := fileFromImage(t, proxy, "/usr/local/bin/pilot-agent")
	assert.Equal(t, "1.0.0", runBinary(t, agent, "version", "--short"))

	// proxyv2 holds the Envoy of the tarball whose sha256 the recipe names.
	want, err := extractEnvoy(envoy)
	require.NoError(t, err)
	got, _ := fileFromImage(t, proxy, "/usr/local/bin/envoy")
	assert.Equal(t, sha(want), sha(got))
	assert.Contains(t, runBinary(t, got, "--version"), repo.ProxySHA)
	boot, _ := fileFromImage(t, proxy, "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json")
	src, err := os.ReadFile(filepath.Join(repo.Dir, "tools/packaging/common/envoy_bootstrap.json"))
	require.NoError(t, err)
	assert.Equal(t, src, boot)

	// Config and provenance, as upstream's Dockerfiles lay them out.
	cf, err := proxy.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "1337:1337", cf.Config.User)
	assert.Equal(t, []string{"/usr/local/bin/pilot-agent"}, cf.Config.Entrypoint)
	assert.Contains(t, cf.Config.Env, "ISTIO_META_ISTIO_PROXY_SHA="+repo.ProxySHA)
	assert.Equal(t, envoySHA, cf.Config.Labels[builder.LabelEnvoySHA256])
	assert.Equal(t, repo.Commit, cf.Config.Labels[builder.AnnotationRevision])
	m, err := proxy.Manifest()
	require.NoError(t, err)
	assert.Equal(t, bases["base/bookworm"].Digest.String(), m.Annotations[builder.AnnotationBaseDigest])
	assert.Equal(t, e.Config.Registry.Address+"/base/bookworm:2", m.Annotations[builder.AnnotationBaseName])
	assert.Equal(t, bases["builder/go1.23.4"].Digest.String(), m.Annotations[builder.LabelBuilderDigest])
	assert.Equal(t, r.Digest(), m.Annotations[builder.LabelRecipeDigest])
	// The base's layers come first, unchanged.
	baseImg, err := e.Registry.Image(ctx, bases["base/bookworm"].Tag)
	require.NoError(t, err)
	baseLayers, _ := baseImg.Layers()
	proxyLayers, _ := proxy.Layers()
	require.Len(t, proxyLayers, len(baseLayers)+1)
	d0, _ := baseLayers[0].Digest()
	p0, _ := proxyLayers[0].Digest()
	assert.Equal(t, d0, p0)

	checkFixturePackages(t, e, repo, res.Published[2:])

	// Nothing changed: nothing is built or pushed.
	again, err := buildAndPublish(t, e, r, builder.Request{}, publish.Settings{})
	require.NoError(t, err)
	assert.True(t, again.UpToDate)
	require.Len(t, again.Published, len(res.Published))
	for i, im := range again.Published {
		assert.Equal(t, api.StatusUnchanged, im.Status)
		assert.Equal(t, res.Published[i].Digest, im.Digest)
		assert.Zero(t, im.BytesUploaded)
	}

	// Two builds, the second with no cache, give identical digests; the
	// tags already name them, so nothing moves.
	check, err := buildAndPublish(t, e, r, builder.Request{CheckReproducible: true}, publish.Settings{})
	require.NoError(t, err)
	require.NotNil(t, check.Reproducible)
	assert.True(t, *check.Reproducible)
	require.Len(t, check.Published, len(res.Published))
	for i, im := range check.Published {
		assert.Equal(t, res.Published[i].Digest, im.Digest, "rebuild of %s", im.Name)
		assert.Equal(t, api.StatusUnchanged, im.Status)
	}
	_ = ctx
}

// A build that reaches for the network fails, and says why.
func TestBuildWithoutNetwork(t *testing.T) {
	e := testenv.Start(t)
	e.Bases(t)
	repo := fixture.Upstream(t, fixture.UpstreamOptions{Overlay: "upstream-network", Tag: "1.0.1"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	file := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, e.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)
	_, err = buildAndPublish(t, e, r, builder.Request{}, publish.Settings{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tried to reach the network")
	assert.Contains(t, err.Error(), "no network")
	// Nothing was tagged.
	tag, _ := e.Registry.Tag("fixture/pilot", "1.0.1")
	_, ok, err := e.Registry.Resolve(context.Background(), tag)
	require.NoError(t, err)
	assert.False(t, ok)
}

func extractEnvoy(tgz []byte) ([]byte, error) {
	return builder.ExtractFile(tgz, fixture.EnvoyBinaryPath)
}

// buildAndPublish builds r in e and publishes it as s says (by default to
// e's registry, with the registry as the cache), as the CLI does.
func buildAndPublish(t *testing.T, e *testenv.Env, r *recipes.Recipe, req builder.Request, s publish.Settings) (*publish.Outcome, error) {
	t.Helper()
	s.Registry = e.Registry
	if s.Key == nil && e.Config.Signing.Key != "" {
		k, err := attest.LoadKey(e.Config.Signing.Key)
		require.NoError(t, err)
		s.Key = k
	}
	pub, cache, err := publish.New(s)
	require.NoError(t, err)
	b, err := builder.New(e.Config, e.Registry, builder.WithProgress(builder.Progress{Out: testWriter{t}, Mode: "plain"}), builder.WithCache(cache))
	require.NoError(t, err)
	return publish.BuildAndPublish(context.Background(), b, r, req, pub)
}

// imageAt reads an image from e's registry.
func imageAt(t *testing.T, e *testenv.Env, ref string) v1.Image {
	t.Helper()
	r, err := e.Registry.ParseRef(ref)
	require.NoError(t, err)
	img, err := e.Registry.Image(context.Background(), r)
	require.NoError(t, err)
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	require.NoError(t, err)
	return d.String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(bytes.TrimSpace(p)), "\n"))
	return len(p), nil
}
