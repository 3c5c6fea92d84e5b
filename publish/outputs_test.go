package publish_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/publish"
)

// An OCI layout and a docker-archive tarball hold the images under their
// names, and skopeo (an independent client) reads and copies them; the
// layout also holds the attestations (with the image as subject) and the
// signature.
func TestLayoutAndTarballReadBySkopeo(t *testing.T) {
	skopeo := tool(t, "skopeo")
	ctx := context.Background()
	f := newFixture(t)
	key := testKey(t)
	a, b := f.image("fixture/pilot", "1.0.0"), f.image("fixture/proxyv2", "1.0.0")
	a.Attestations, b.Attestations = documents(t, a), documents(t, b)
	dir, tarFile := filepath.Join(t.TempDir(), "layout"), filepath.Join(t.TempDir(), "out", "images.tar")
	p := publish.Signed(publish.Multi(publish.Layout(dir), publish.Tarball(tarFile)), key)
	out, err := p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{a, b}})
	require.NoError(t, err)
	require.Len(t, out, 4)
	for _, im := range out {
		assert.Equal(t, api.StatusWritten, im.Status)
	}
	assert.Equal(t, "oci-layout:"+dir, out[0].Output)
	assert.NotEmpty(t, out[0].Provenance)
	assert.NotEmpty(t, out[0].Signature)
	assert.Equal(t, "tar:"+tarFile, out[2].Output)
	assert.Empty(t, out[2].Provenance, "a docker archive holds images only")

	for _, im := range []builder.Image{a, b} {
		refName := im.Tag.RepositoryStr() + ":" + im.Tag.TagStr()
		raw, err := run(t, nil, skopeo, "inspect", "--raw", "oci:"+dir+":"+refName)
		require.NoError(t, err, raw)
		want, err := im.Image.RawManifest()
		require.NoError(t, err)
		assert.JSONEq(t, string(want), raw, "skopeo reads %s from the layout", refName)

		info, err := run(t, nil, skopeo, "inspect", "docker-archive:"+tarFile+":"+im.Tag.String())
		require.NoError(t, err, info)
		var meta struct{ Layers []string }
		require.NoError(t, json.Unmarshal([]byte(info), &meta), info)
		layers, err := im.Image.Layers()
		require.NoError(t, err)
		assert.Len(t, meta.Layers, len(layers))
	}

	// skopeo copies from the layout into a registry, digest for digest.
	dest := f.env.Config.Registry.Address + "/copied/pilot:1"
	outp, err := run(t, nil, skopeo, "copy", "--dest-tls-verify=false", "oci:"+dir+":fixture/pilot:1.0.0", "docker://"+dest)
	require.NoError(t, err, outp)
	d, ok := f.resolve(mustTag(t, dest))
	require.True(t, ok)
	assert.Equal(t, a.Digest, d)

	// The layout holds the attestations as manifests with the image as
	// subject, and the signature under cosign's tag name.
	idx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	subjects, names := 0, map[string]bool{}
	for _, desc := range m.Manifests {
		names[desc.Annotations[publish.AnnotationRefName]] = true
		img, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		mf, err := img.Manifest()
		require.NoError(t, err)
		if mf.Subject != nil && mf.Subject.Digest == a.Digest {
			subjects++
		}
	}
	assert.Equal(t, 2, subjects, "pilot's provenance and SBOM")
	assert.True(t, names["fixture/pilot:sha256-"+a.Digest.Hex+".sig"])
	assert.True(t, names["fixture/pilot:sha256-"+a.Digest.Hex+".att"])

	// Writing again replaces the image of the same name, keeps the rest.
	a2 := f.image("fixture/pilot", "1.0.0")
	_, err = publish.Layout(dir).Publish(ctx, &builder.Result{Images: []builder.Image{a2}})
	require.NoError(t, err)
	raw, err := run(t, nil, skopeo, "inspect", "--raw", "oci:"+dir+":fixture/pilot:1.0.0")
	require.NoError(t, err, raw)
	want, _ := a2.Image.RawManifest()
	assert.JSONEq(t, string(want), raw)
	_, err = run(t, nil, skopeo, "inspect", "--raw", "oci:"+dir+":fixture/proxyv2:1.0.0")
	assert.NoError(t, err)

	// A directory with other things in it is not taken for a layout.
	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644))
	_, err = publish.Layout(other).Publish(ctx, &builder.Result{Images: []builder.Image{a}})
	require.ErrorContains(t, err, "is not an OCI image layout")
}

// Signatures and attestations are what cosign itself verifies: cosign
// verify, verify-attestation for the SLSA provenance and the SPDX SBOM,
// and cosign tree lists them; another key is refused.
func TestCosignVerifies(t *testing.T) {
	cosign := tool(t, "cosign")
	ctx := context.Background()
	f := newFixture(t)
	keyDir := t.TempDir()
	priv, pub, err := attestKeyFiles(t, keyDir, "sailmaker")
	require.NoError(t, err)
	_, otherPub, err := attestKeyFiles(t, keyDir, "other")
	require.NoError(t, err)

	im := f.image("fixture/pilot", "1.0.0")
	im.Attestations = documents(t, im)
	out, err := publish.Signed(f.publisher(f.env.Registry), priv).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{im}})
	require.NoError(t, err)
	require.NotEmpty(t, out[0].Attestations)
	ref := out[0].Reference
	env := []string{"HOME=" + t.TempDir(), "SIGSTORE_NO_CACHE=true", "TUF_ROOT=" + t.TempDir()}
	common := []string{"--insecure-ignore-tlog=true", "--allow-http-registry=true", "--allow-insecure-registry=true"}

	o, err := run(t, env, cosign, append([]string{"verify", "--key", pub}, append(common, ref)...)...)
	require.NoError(t, err, o)
	o, err = run(t, env, cosign, append([]string{"verify", "--key", otherPub}, append(common, ref)...)...)
	require.Error(t, err, "another key: %s", o)

	for _, typ := range []string{"slsaprovenance1", "spdxjson"} {
		o, err = run(t, env, cosign, append([]string{"verify-attestation", "--key", pub, "--type", typ}, append(common, ref)...)...)
		require.NoError(t, err, "verify-attestation --type %s: %s", typ, o)
		assert.Contains(t, o, `"payloadType":"application/vnd.in-toto+json"`)
		o, err = run(t, env, cosign, append([]string{"verify-attestation", "--key", otherPub, "--type", typ}, append(common, ref)...)...)
		require.Error(t, err, "another key: %s", o)
	}

	o, err = run(t, env, cosign, "tree", "--allow-http-registry=true", "--allow-insecure-registry=true", ref)
	require.NoError(t, err, o)
	assert.Contains(t, o, "Attestations for an image tag")
	assert.Contains(t, o, "Signatures for an image tag")
	// cosign lists the .att tag's layers: our two DSSE envelopes.
	attImg, err := remote.Image(mustTag(t, strings.Replace(ref, "@sha256:", ":sha256-", 1)+".att"), f.env.Registry.Remote(ctx)...)
	require.NoError(t, err)
	layers, err := attImg.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2)
	for _, l := range layers {
		d, err := l.Digest()
		require.NoError(t, err)
		assert.Contains(t, o, d.String())
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tg, err := name.NewTag(s, name.Insecure)
	require.NoError(t, err)
	return tg
}

// A package goes into an OCI layout with the images, and is left out of a
// docker archive, which holds images only.
func TestPackagesInLayoutNotInTarball(t *testing.T) {
	skopeo := tool(t, "skopeo")
	ctx := context.Background()
	f := newFixture(t)
	img := f.image("fixture/pilot", "1.0.0")
	debData := []byte("!<arch>\nnot really a package, but an artifact's bytes all the same\n")
	art, err := builder.NewArtifact(builder.ArtifactTypeDeb, "", debData, "istio-cni_1.0.0-1_amd64.deb", map[string]string{
		builder.AnnotationPackageName: "istio-cni", builder.AnnotationPackageVersion: "1.0.0-1", builder.AnnotationPackageArch: "amd64",
	})
	require.NoError(t, err)
	d, err := art.Digest()
	require.NoError(t, err)
	pkg := builder.Image{Name: "istio-cni", Kind: builder.KindPackage, Tag: mustTag(t, f.env.Config.Registry.Address+"/fixture/istio-cni:1.0.0-1"), Image: art, Digest: d}
	dir, tarFile := filepath.Join(t.TempDir(), "layout"), filepath.Join(t.TempDir(), "images.tar")
	out, err := publish.Multi(publish.Layout(dir), publish.Tarball(tarFile)).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{img, pkg}})
	require.NoError(t, err)
	require.Len(t, out, 3, "both into the layout, the image alone into the tarball")
	assert.Equal(t, "oci-layout:"+dir, out[1].Output)
	assert.Equal(t, api.KindPackage, out[1].Kind)
	require.NotNil(t, out[1].Package)
	assert.Equal(t, api.Package{Name: "istio-cni", Version: "1.0.0-1", Architecture: "amd64", File: "istio-cni_1.0.0-1_amd64.deb"}, *out[1].Package)
	assert.Equal(t, "tar:"+tarFile, out[2].Output)
	assert.Equal(t, "pilot", out[2].Name)

	raw, err := run(t, nil, skopeo, "inspect", "--raw", "oci:"+dir+":fixture/istio-cni:1.0.0-1")
	require.NoError(t, err, raw)
	assert.Contains(t, raw, `"artifactType":"application/vnd.debian.binary-package"`)
	layoutImg, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	back, err := layoutImg.Image(d)
	require.NoError(t, err)
	content, err := builder.ArtifactContent(back, builder.ArtifactTypeDeb)
	require.NoError(t, err)
	assert.Equal(t, debData, content)
	info, err := run(t, nil, skopeo, "inspect", "docker-archive:"+tarFile+":"+pkg.Tag.String())
	assert.Error(t, err, "not in the tarball: %s", info)
}
