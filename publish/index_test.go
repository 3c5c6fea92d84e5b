package publish_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
)

// multiImage is an image index of repo:tag with a linux/amd64 and a
// linux/arm64 image, each with its provenance and SBOM, labelled with the
// inputs key as a build labels them.
func (f *fixture) multiImage(repo, tag, inputsKey string) builder.Image {
	f.t.Helper()
	var prs []base.PlatformResult
	var manifests []builder.Image
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		im := withLabel(f.t, f.image(repo, tag), builder.LabelInputs, inputsKey)
		cf, err := im.Image.ConfigFile()
		require.NoError(f.t, err)
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		img, err := mutate.ConfigFile(im.Image, cf)
		require.NoError(f.t, err)
		im.Image = img
		im.Digest, err = img.Digest()
		require.NoError(f.t, err)
		im.Platform = strings.TrimSuffix(p.OS+"/"+p.Architecture+"/"+p.Variant, "/")
		prs = append(prs, base.PlatformResult{Platform: p, Image: img})
		manifests = append(manifests, im)
	}
	idx, err := base.NewIndex(prs)
	require.NoError(f.t, err)
	d, err := idx.Digest()
	require.NoError(f.t, err)
	ref := manifests[0].Tag.Context().Digest(d.String())
	for i := range manifests {
		manifests[i].Attestations = documentsIn(f.t, manifests[i], &ref)
	}
	return builder.Image{Name: manifests[0].Name, Tag: manifests[0].Tag, Index: idx, Digest: d, Manifests: manifests}
}

// A multi-platform image goes to the registry as an OCI image index under
// its tag, its images by digest first, each with its own provenance and
// SBOM as referrers; the index and each image are signed, and cosign
// itself verifies the signature and the attestations on the tag (the
// index, whose .att holds its images' attestations) and on each image.
// The registry as the builder's cache finds the index again.
func TestRegistryPublishesAnIndex(t *testing.T) {
	cosign := tool(t, "cosign")
	skopeo := tool(t, "skopeo")
	ctx := context.Background()
	f := newFixture(t)
	priv, pub, err := attestKeyFiles(t, t.TempDir(), "sailmaker")
	require.NoError(t, err)
	const key = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	im := f.multiImage("fixture/pilot", "1.0.0", key)

	reg := f.publisher(f.env.Registry, publish.RequireSigned(true))
	out, err := publish.Signed(reg, priv).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{im}})
	require.NoError(t, err)
	require.Len(t, out, 1)
	r := out[0]
	assert.Equal(t, im.Digest.String(), r.Digest)
	assert.Equal(t, "application/vnd.oci.image.index.v1+json", r.MediaType)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64/v8"}, r.Platforms)
	assert.Equal(t, api.StatusPushed, r.Status)
	assert.Empty(t, r.Provenance, "the index has no attestations of its own")
	assert.NotEmpty(t, r.Signature)
	assert.NotEmpty(t, r.Attestations)
	require.Len(t, r.Manifests, 2)
	for i, m := range r.Manifests {
		assert.Equal(t, im.Manifests[i].Digest.String(), m.Digest)
		assert.NotEmpty(t, m.Provenance, m.Platform)
		assert.NotEmpty(t, m.SBOM, m.Platform)
		assert.NotEmpty(t, m.Signature, m.Platform)
		assert.NotEmpty(t, m.Attestations, m.Platform)
	}

	// An independent client sees an image index with both platforms.
	raw, err := run(t, nil, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+im.Tag.String())
	require.NoError(t, err, raw)
	var idx v1.IndexManifest
	require.NoError(t, json.Unmarshal([]byte(raw), &idx), raw)
	require.Len(t, idx.Manifests, 2)
	assert.Equal(t, "amd64", idx.Manifests[0].Platform.Architecture)
	assert.Equal(t, "arm64", idx.Manifests[1].Platform.Architecture)

	env := []string{"HOME=" + t.TempDir(), "SIGSTORE_NO_CACHE=true", "TUF_ROOT=" + t.TempDir()}
	common := []string{"--insecure-ignore-tlog=true", "--allow-http-registry=true", "--allow-insecure-registry=true"}
	for _, ref := range []string{im.Tag.String(), r.Reference, r.Manifests[1].Reference} {
		o, err := run(t, env, cosign, append([]string{"verify", "--key", pub}, append(common, ref)...)...)
		require.NoError(t, err, "cosign verify %s: %s", ref, o)
		for _, typ := range []string{"slsaprovenance1", "spdxjson"} {
			o, err := run(t, env, cosign, append([]string{"verify-attestation", "--key", pub, "--type", typ}, append(common, ref)...)...)
			require.NoError(t, err, "cosign verify-attestation --type %s %s: %s", typ, ref, o)
		}
	}
	// The tag's (the index's) attestations are those of both images.
	att, err := remote.Image(mustTag(t, im.Tag.Context().String()+":"+strings.Replace(r.Digest, ":", "-", 1)+".att"), f.env.Registry.Remote(ctx)...)
	require.NoError(t, err)
	layers, err := att.Layers()
	require.NoError(t, err)
	assert.Len(t, layers, 4, "provenance and SBOM of each platform")

	// The cache finds the index, built from the same inputs, only for the
	// same platforms.
	r1, err := recipes.Parse("r.yaml", []byte(multiRecipe))
	require.NoError(t, err)
	plan := builder.Plan{Recipe: r1, InputsKey: key, Targets: []builder.Target{{Name: "pilot", Tag: im.Tag}}, Platforms: []string{"linux/amd64", "linux/arm64"}}
	got, ok, err := reg.Lookup(ctx, plan)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, im.Digest, got[0].Digest)
	require.Len(t, got[0].Manifests, 2)
	assert.Equal(t, "linux/arm64/v8", got[0].Manifests[1].Platform)
	assert.Contains(t, got[0].Manifests[1].Attached, attest.ProvenanceArtifactType)
	plan.Platforms = []string{"linux/amd64"}
	_, ok, err = reg.Lookup(ctx, plan)
	require.NoError(t, err)
	assert.False(t, ok, "another set of platforms")
	plan.Platforms, plan.InputsKey = []string{"linux/amd64", "linux/arm64"}, "sha256:"+strings.Repeat("2", 64)
	_, ok, err = reg.Lookup(ctx, plan)
	require.NoError(t, err)
	assert.False(t, ok, "other inputs")

	// Published again: unchanged, nothing uploaded.
	again, err := publish.Signed(reg, priv).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{im}})
	require.NoError(t, err)
	assert.Equal(t, api.StatusUnchanged, again[0].Status)
	assert.Zero(t, again[0].BytesUploaded)
}

// An OCI layout holds the index under its name, its images' attestations
// with each image as subject; a docker archive refuses an index of more
// than one platform, clearly, and takes the one image of a one-platform
// index.
func TestLayoutAndTarballWithAnIndex(t *testing.T) {
	skopeo := tool(t, "skopeo")
	ctx := context.Background()
	f := newFixture(t)
	im := f.multiImage("fixture/proxyv2", "1.0.0", "k")
	dir := filepath.Join(t.TempDir(), "layout")
	out, err := publish.Layout(dir).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{im}})
	require.NoError(t, err)
	require.Len(t, out[0].Manifests, 2)
	raw, err := run(t, nil, skopeo, "inspect", "--raw", "oci:"+dir+":fixture/proxyv2:1.0.0")
	require.NoError(t, err, raw)
	want, err := im.Index.RawManifest()
	require.NoError(t, err)
	assert.JSONEq(t, string(want), raw)
	lidx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	m, err := lidx.IndexManifest()
	require.NoError(t, err)
	subjects := map[v1.Hash]int{}
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		img, err := lidx.Image(d.Digest)
		require.NoError(t, err)
		mf, err := img.Manifest()
		require.NoError(t, err)
		if mf.Subject != nil {
			subjects[mf.Subject.Digest]++
		}
	}
	assert.Equal(t, map[v1.Hash]int{im.Manifests[0].Digest: 2, im.Manifests[1].Digest: 2}, subjects)

	tarFile := filepath.Join(t.TempDir(), "images.tar")
	_, err = publish.Tarball(tarFile).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{im}})
	require.ErrorIs(t, err, publish.ErrTarIndex)
	assert.ErrorContains(t, err, "linux/amd64, linux/arm64/v8")
	assert.ErrorContains(t, err, "--platform")
	one := im
	one.Manifests = im.Manifests[1:]
	out, err = publish.Tarball(tarFile).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{one}})
	require.NoError(t, err)
	assert.Equal(t, im.Manifests[1].Digest.String(), out[0].Digest, "the one platform's image")
	assert.Equal(t, []string{"linux/arm64/v8"}, out[0].Platforms)

	// Refused before a build: a tar output for several platforms.
	outs, err := publish.ParseOutputs([]string{"registry", "tar=" + tarFile})
	require.NoError(t, err)
	assert.ErrorContains(t, publish.CheckOutputs(outs, true, 2), "add --platform")
	assert.NoError(t, publish.CheckOutputs(outs, true, 1))
	assert.NoError(t, publish.CheckOutputs(outs, false, 1))
}

const multiRecipe = `apiVersion: sailmaker.dev/v1alpha1
kind: Recipe
metadata: {name: fixture, version: 1.0.0}
spec:
  source: {git: https://example.invalid/x.git, tag: 1.0.0, commit: 7754674f65d38523e49b692cbb95a5bb1e2a93b8}
  toolchain: {builder: "${REGISTRY}/builder/go1.23.4:1", go: 1.23.4}
  platforms: [linux/amd64, linux/arm64]
  make: {variables: {VERSION: 1.0.0}, targets: ["out/linux_${TARGET_ARCH}/pilot-discovery"]}
  images:
    - name: pilot
      repository: fixture/pilot
      tag: 1.0.0
      base: ${REGISTRY}/base/bookworm:2
      files: [{from: "build:out/linux_${TARGET_ARCH}/pilot-discovery", to: /usr/local/bin/pilot-discovery}]
`
