package publish_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/fakeistio"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/packaging/istio"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/store"
)

// istioctlRelease is a build's result holding one release's istioctl (a
// stand-in, stamped as upstream's make stamps it), annotated as the
// builder annotates it, with its provenance and SBOM.
func istioctlRelease(t *testing.T, e *testenv.Env, version string, day int) *builder.Result {
	t.Helper()
	bin, err := fakeistio.Build(context.Background(), filepath.Join(t.TempDir(), version), "istioctl", version, "amd64")
	require.NoError(t, err)
	created := time.Date(2024, 12, 14, 3, 28, 3, 0, time.UTC).AddDate(0, 0, day)
	img, err := builder.NewArtifact(builder.ArtifactTypeBinary, bin, nil, "istioctl", map[string]string{
		builder.AnnotationTitle:             "istioctl",
		builder.AnnotationVersion:           version,
		builder.AnnotationCreated:           created.Format(time.RFC3339),
		builder.AnnotationPackageName:       "istioctl-versions",
		builder.AnnotationPackageVersion:    version,
		builder.AnnotationPackageArch:       "amd64",
		builder.AnnotationPackageType:       recipes.PackageIstioctl,
		builder.AnnotationPackageMaintainer: "Sail Maker <sailmaker@example.org>",
		builder.AnnotationCollection:        "demo/istioctl-versions",
		builder.LabelRecipe:                 "demo@" + version,
		builder.LabelRecipeDigest:           "sha256:" + strings.Repeat("a", 64),
		builder.AnnotationRevision:          strings.Repeat("c", 40),
		builder.AnnotationSource:            "https://example.invalid/demo.git",
		builder.LabelTag:                    version,
		builder.LabelBuilder:                "reg.invalid/builder:1",
		builder.LabelBuilderDigest:          "sha256:" + strings.Repeat("b", 64),
		builder.LabelGoVersion:              "1.23.4",
	})
	require.NoError(t, err)
	tag, err := e.Registry.Tag("demo/istioctl", version)
	require.NoError(t, err)
	d, err := img.Digest()
	require.NoError(t, err)
	im := builder.Image{Name: "istioctl", Kind: builder.KindBinary, Tag: tag, Image: img, Digest: d}
	im.Attestations = documents(t, im)
	return &builder.Result{RecipeID: "demo@" + version, Trigger: api.Trigger{Actor: "tester", Kind: "cli", BuildID: "b-" + version}, Images: []builder.Image{im}}
}

func named(imgs []api.Image, name, output string) *api.Image {
	for i := range imgs {
		if imgs[i].Name == name && imgs[i].Output == output {
			return &imgs[i]
		}
	}
	return nil
}

// After each release's istioctl is pushed, istioctl-versions is made from
// every istioctl the registry holds: a new release adds a version and keeps
// the old; the same releases give the same package (nothing pushed);
// retention drops what it says; every version goes to the apt repository
// too, signed, and is recorded in the ledger.
func TestIstioctlVersions(t *testing.T) {
	e := testenv.Registry(t)
	ctx := context.Background()
	st, err := store.OpenDir(ctx, e.Config.StateDir)
	require.NoError(t, err)
	defer st.Close()
	aptKey, err := aptrepo.GenerateKey("test", "", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "apt.asc")
	require.NoError(t, os.WriteFile(keyFile, aptKey.Private, 0o600))
	signer, err := aptrepo.LoadSigner(keyFile)
	require.NoError(t, err)
	aptDir := filepath.Join(t.TempDir(), "apt")
	publishWith := func(res *builder.Result, retention string) []api.Image {
		t.Helper()
		r, err := istio.ParseRetention(retention)
		require.NoError(t, err)
		p, _, err := publish.New(publish.Settings{
			Outputs:  []publish.Output{{Kind: publish.OutputRegistry}, {Kind: publish.OutputApt, Path: aptDir}},
			Registry: e.Registry, Ledger: st, Key: testKey(t), AptSigner: signer, IstioctlRetention: r,
		})
		require.NoError(t, err)
		out, err := p.Publish(ctx, res)
		require.NoError(t, err)
		return out
	}

	// 1.0.0: the package holds it alone.
	out := publishWith(istioctlRelease(t, e, "1.0.0", 0), "all")
	require.NotNil(t, named(out, "istioctl", "registry"))
	v1 := named(out, "istioctl-versions", "registry")
	require.NotNil(t, v1, "%+v", out)
	assert.Equal(t, api.StatusPushed, v1.Status)
	assert.Equal(t, "1.0.0+1.1000000", v1.Package.Version)
	assert.Equal(t, []string{"1.0.0"}, v1.Package.Holds)
	assert.Equal(t, e.Config.Registry.Address+"/demo/istioctl-versions", v1.Repository)
	assert.NotEmpty(t, v1.Signature, "signed like the build's artifacts")
	assert.NotEmpty(t, v1.Provenance)
	apt := named(out, "istioctl-versions", "apt:"+aptDir)
	require.NotNil(t, apt)
	assert.Equal(t, "pool/main/i/istioctl-versions/istioctl-versions_1.0.0+1.1000000_amd64.deb", apt.Reference)

	// A tag the registry lists before its manifest is linked (another
	// build writing it) is left out, not a failure.
	half := filepath.Join(e.Config.Registry.Root, "docker", "registry", "v2", "repositories", "demo", "istioctl", "_manifests", "tags", "1.0.5")
	require.NoError(t, os.MkdirAll(half, 0o755))

	// 1.1.0: a new version, holding both.
	out = publishWith(istioctlRelease(t, e, "1.1.0", 30), "all")
	require.NoError(t, os.RemoveAll(half))
	v2 := named(out, "istioctl-versions", "registry")
	require.NotNil(t, v2)
	assert.Equal(t, api.StatusPushed, v2.Status)
	assert.Equal(t, "1.1.0+2.2001000", v2.Package.Version)
	assert.Equal(t, "1.1.0_2.2001000", v2.Tag)
	assert.Equal(t, []string{"1.1.0", "1.0.0"}, v2.Package.Holds)

	// 1.1.0 again: the same package, nothing pushed.
	out = publishWith(istioctlRelease(t, e, "1.1.0", 30), "all")
	again := named(out, "istioctl-versions", "registry")
	require.NotNil(t, again)
	assert.Equal(t, api.StatusUnchanged, again.Status)
	assert.Equal(t, v2.Digest, again.Digest)
	assert.Zero(t, again.BytesUploaded)
	assert.Equal(t, api.StatusUnchanged, named(out, "istioctl-versions", "apt:"+aptDir).Status)

	// 1.1.1 with newest-per-minor=1: 1.1.0 is dropped, the version still rises.
	out = publishWith(istioctlRelease(t, e, "1.1.1", 60), "newest-per-minor=1")
	v3 := named(out, "istioctl-versions", "registry")
	require.NotNil(t, v3)
	assert.Equal(t, []string{"1.1.1", "1.0.0"}, v3.Package.Holds)
	assert.Equal(t, "1.1.1+2.2001001", v3.Package.Version)

	// The apt repository keeps every version; the ledger recorded each tag.
	pool, err := filepath.Glob(filepath.Join(aptDir, "pool/main/i/istioctl-versions/*.deb"))
	require.NoError(t, err)
	assert.Len(t, pool, 3)
	tags, err := st.Tags(ctx)
	require.NoError(t, err)
	for _, v := range []*api.Image{v1, v2, v3} {
		ts, ok := tags["demo/istioctl-versions:"+v.Tag]
		require.True(t, ok, v.Tag)
		assert.Equal(t, v.Digest, ts.Digest)
	}
	// An artifact in the istioctl repository sailmaker did not attest is left out.
	foreign := istioctlRelease(t, e, "1.2.0", 90)
	foreign.Images[0].Attestations = nil
	reg, err := publish.NewRegistry(e.Registry)
	require.NoError(t, err)
	_, err = reg.Publish(ctx, foreign)
	require.NoError(t, err)
	out = publishWith(istioctlRelease(t, e, "1.1.1", 60), "all")
	all := named(out, "istioctl-versions", "registry")
	require.NotNil(t, all)
	assert.Equal(t, []string{"1.1.1", "1.1.0", "1.0.0"}, all.Package.Holds, "1.2.0 has no provenance: not ours")
}
