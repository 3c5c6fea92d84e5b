package builder_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/recipes"
)

// The documents are read here with go-containerregistry and encoding/json
// only, not with sailmaker's own reading code.

// referrersOf lists the referrers of an image by artifact type.
func referrersOf(t *testing.T, ref name.Digest, opts []remote.Option) map[string][]v1.Descriptor {
	t.Helper()
	idx, err := remote.Referrers(ref, opts...)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	out := map[string][]v1.Descriptor{}
	for _, d := range im.Manifests {
		out[d.ArtifactType] = append(out[d.ArtifactType], d)
	}
	return out
}

// readAttachment checks an attachment's manifest and returns its document.
func readAttachment(t *testing.T, subject name.Digest, d v1.Descriptor, opts []remote.Option) map[string]any {
	t.Helper()
	img, err := remote.Image(subject.Context().Digest(d.Digest.String()), opts...)
	require.NoError(t, err)
	m, err := img.Manifest()
	require.NoError(t, err)
	assert.Equal(t, "application/vnd.oci.image.manifest.v1+json", string(m.MediaType))
	assert.Equal(t, d.ArtifactType, m.ArtifactType)
	require.NotNil(t, m.Subject)
	assert.Equal(t, subject.DigestStr(), m.Subject.Digest.String())
	assert.Equal(t, "application/vnd.oci.empty.v1+json", string(m.Config.MediaType))
	assert.EqualValues(t, 2, m.Config.Size)
	_, err = time.Parse(time.RFC3339, m.Annotations["org.opencontainers.image.created"])
	assert.NoError(t, err)
	require.Len(t, m.Layers, 1)
	assert.Equal(t, d.ArtifactType, string(m.Layers[0].MediaType))
	layers, err := img.Layers()
	require.NoError(t, err)
	rc, err := layers[0].Compressed()
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc), string(b))
	return doc
}

// field walks a JSON document along dotted keys.
func field(t *testing.T, doc any, path string) any {
	t.Helper()
	cur := doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		require.True(t, ok, "%s: not an object at %s", path, k)
		cur, ok = m[k]
		require.True(t, ok, "%s: no %s", path, k)
	}
	return cur
}

// verifyCosign checks the image's cosign signature with crypto/ecdsa
// directly: the .sig tag, a simple-signing layer naming the digest, and
// its ASN.1 signature over the payload.
func verifyCosign(t *testing.T, ref name.Digest, pub *ecdsa.PublicKey, opts []remote.Option) bool {
	t.Helper()
	tag := ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + ".sig")
	img, err := remote.Image(tag, opts...)
	require.NoError(t, err, "the signature tag %s", tag)
	m, err := img.Manifest()
	require.NoError(t, err)
	for _, l := range m.Layers {
		if string(l.MediaType) != "application/vnd.dev.cosign.simplesigning.v1+json" {
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		require.NoError(t, err)
		rc, err := layer.Compressed()
		require.NoError(t, err)
		pl, err := io.ReadAll(rc)
		require.NoError(t, err)
		var simple map[string]any
		require.NoError(t, json.Unmarshal(pl, &simple))
		if field(t, simple, "critical.image.docker-manifest-digest") != ref.DigestStr() {
			continue
		}
		assert.Equal(t, ref.Context().Name(), field(t, simple, "critical.identity.docker-reference"))
		assert.Equal(t, "cosign container image signature", field(t, simple, "critical.type"))
		sig, err := base64.StdEncoding.DecodeString(l.Annotations["dev.cosignproject.cosign/signature"])
		require.NoError(t, err)
		sum := sha256.Sum256(pl)
		if ecdsa.VerifyASN1(pub, sum[:], sig) {
			return true
		}
	}
	return false
}

func publicKey(t *testing.T, pemBytes []byte) *ecdsa.PublicKey {
	t.Helper()
	blk, _ := pem.Decode(pemBytes)
	require.NotNil(t, blk)
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	require.NoError(t, err)
	return pub.(*ecdsa.PublicKey)
}

// Every image a build pushes carries a provenance statement and an SBOM as
// OCI referrers and, with a key configured, a cosign signature; a second
// build adds nothing; images that lost their attestations or signature
// (pushed before this existed) get them back on the next build, with the
// same image digest.
func TestBuildAttestsAndSigns(t *testing.T) {
	e := testenv.Start(t)
	bases := e.Bases(t)
	ctx := context.Background()
	opts := e.Registry.Remote(ctx)

	keyDir := t.TempDir()
	priv, pub, err := attest.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "sailmaker.key"), priv, 0o600))
	_, otherPub, err := attest.GenerateKey()
	require.NoError(t, err)
	e.Config.Signing.Key = filepath.Join(keyDir, "sailmaker.key")

	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	// With one patch (to the README: the binaries stay as they are).
	readme, err := os.ReadFile(filepath.Join(repo.Dir, "README.md"))
	require.NoError(t, err)
	lines := strings.SplitAfter(strings.TrimSuffix(string(readme), "\n"), "\n")
	patch := fmt.Sprintf("--- a/README.md\n+++ b/README.md\n@@ -1,%d +1,%d @@\n", len(lines), len(lines)+1)
	for _, l := range lines {
		patch += " " + strings.TrimSuffix(l, "\n") + "\n"
	}
	patch += "+built by sailmaker\n"
	recipeDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(recipeDir, "readme.patch"), []byte(patch), 0o644))
	yaml := fixture.RecipeYAML(repo, srv.URL+"/envoy/", envoySHA, e.Config.Registry.Address)
	yaml = strings.Replace(yaml, "    commit: ", "    patches: [readme.patch]\n    commit: ", 1)
	file := filepath.Join(recipeDir, "fixture.yaml")
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o644))
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)
	require.Len(t, r.Patches(), 1)

	bk, err := builder.Connect(ctx, e.Config)
	require.NoError(t, err)
	info, err := bk.Info(ctx)
	require.NoError(t, err)
	bk.Close()
	bkVersion := info.BuildkitVersion.Version
	require.NotEmpty(t, bkVersion)

	triggered := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	o := builder.Options{
		Config: e.Config, Registry: e.Registry, Progress: builder.Progress{Out: testWriter{t}, Mode: "plain"},
		Trigger: builder.Trigger{Actor: "ci-bot", Kind: "webhook", DeliveryID: "delivery-123", BuildID: "build-9", Time: triggered},
	}
	res, err := builder.Build(ctx, r, o)
	require.NoError(t, err)
	require.Len(t, res.Images, 2)

	baseImg, err := e.Registry.Image(ctx, bases["base/bookworm"].Tag)
	require.NoError(t, err)
	bcf, err := baseImg.ConfigFile()
	require.NoError(t, err)
	debs := strings.Split(bcf.Config.Labels[base.LabelPackages], ",")
	require.Greater(t, len(debs), 20, "the base lists its Debian packages")

	for _, im := range res.Images {
		ref := im.Tag.Context().Digest(im.Digest.String())
		refs := referrersOf(t, ref, opts)
		require.Len(t, refs["application/vnd.in-toto+json"], 1, "%s: one provenance", im.Name)
		require.Len(t, refs["application/spdx+json"], 1, "%s: one SBOM", im.Name)
		provDesc, sbomDesc := refs["application/vnd.in-toto+json"][0], refs["application/spdx+json"][0]
		assert.Equal(t, provDesc.Digest.String(), im.Provenance)
		assert.Equal(t, sbomDesc.Digest.String(), im.SBOM)
		assert.NotEmpty(t, im.Signature)

		// Provenance.
		prov := readAttachment(t, ref, provDesc, opts)
		assert.Equal(t, "https://in-toto.io/Statement/v1", field(t, prov, "_type"))
		assert.Equal(t, "https://slsa.dev/provenance/v1", field(t, prov, "predicateType"))
		subj := field(t, prov, "subject").([]any)[0]
		assert.Equal(t, im.Digest.Hex, field(t, subj, "digest.sha256"))
		assert.Equal(t, im.Tag.Context().Name(), field(t, subj, "name"))
		x := field(t, prov, "predicate.buildDefinition.externalParameters")
		assert.Equal(t, repo.Commit, field(t, x, "source.commit"))
		assert.Equal(t, "1.0.0", field(t, x, "source.tag"))
		assert.Equal(t, repo.URL, field(t, x, "source.git"))
		assert.Equal(t, r.Digest(), field(t, x, "recipe.digest"))
		assert.Equal(t, bases["builder/go1.23.4"].Digest.String(), field(t, x, "toolchain.builderDigest"))
		assert.Equal(t, "1.23.4", field(t, x, "toolchain.go"))
		assert.Equal(t, bases["base/bookworm"].Digest.String(), field(t, x, "base.digest"))
		assert.Equal(t, envoySHA, field(t, x, "envoy.sha256"))
		assert.Equal(t, repo.ProxySHA, field(t, x, "envoy.proxySha"))
		assert.Contains(t, field(t, x, "envoy.url"), fixture.EnvoyTarballName(repo.ProxySHA))
		assert.Equal(t, "1.0.0", field(t, x, "make.variables.VERSION"))
		assert.Equal(t, []any{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent"}, field(t, x, "make.targets"))
		assert.Equal(t, im.Name, field(t, x, "image.name"))
		assert.Equal(t, []any{map[string]any{"path": "readme.patch", "sha256": sha([]byte(patch))}}, field(t, x, "patches"))
		in := field(t, prov, "predicate.buildDefinition.internalParameters")
		assert.Equal(t, "ci-bot", field(t, in, "trigger.actor"))
		assert.Equal(t, "webhook", field(t, in, "trigger.kind"))
		assert.Equal(t, "delivery-123", field(t, in, "trigger.deliveryId"))
		assert.Equal(t, "2025-03-01T09:30:00Z", field(t, in, "trigger.time"))
		assert.Equal(t, res.InputsKey, field(t, in, "inputsKey"))
		assert.Equal(t, bkVersion, field(t, in, "buildkitVersion"), "the daemon's BuildKit version")
		assert.Equal(t, "build-9", field(t, prov, "predicate.runDetails.metadata.invocationId"))
		deps := map[string]any{}
		for _, d := range field(t, prov, "predicate.buildDefinition.resolvedDependencies").([]any) {
			deps[field(t, d, "uri").(string)] = field(t, d, "digest")
		}
		assert.Equal(t, map[string]any{"gitCommit": repo.Commit}, deps["git+"+repo.URL+"@refs/tags/1.0.0"])
		assert.Equal(t, map[string]any{"sha256": bases["base/bookworm"].Digest.Hex}, deps[e.Config.Registry.Address+"/base/bookworm:2"])
		assert.Equal(t, map[string]any{"sha256": bases["builder/go1.23.4"].Digest.Hex}, deps[e.Config.Registry.Address+"/builder/go1.23.4:1"])
		assert.Equal(t, map[string]any{"sha256": envoySHA}, deps[field(t, x, "envoy.url").(string)])
		assert.Equal(t, map[string]any{"sha256": sha([]byte(patch))}, deps["file:readme.patch"])

		// SBOM: the fixture's third-party module, the main module at the
		// recipe's version, the toolchain, the base's Debian packages.
		sbom := readAttachment(t, ref, sbomDesc, opts)
		assert.Equal(t, "SPDX-2.3", field(t, sbom, "spdxVersion"))
		// name -> versionInfo -> package (proxyv2's stand-in Envoy is a Go
		// binary too, built with the host's Go: two stdlib versions).
		pkgs := map[string]map[string]map[string]any{}
		for _, p := range field(t, sbom, "packages").([]any) {
			n, v := field(t, p, "name").(string), field(t, p, "versionInfo").(string)
			if pkgs[n] == nil {
				pkgs[n] = map[string]map[string]any{}
			}
			pkgs[n][v] = p.(map[string]any)
		}
		require.Contains(t, pkgs, "github.com/google/uuid", "%s: the SBOM lists the fixture's module", im.Name)
		require.Contains(t, pkgs["github.com/google/uuid"], "v1.6.0")
		assert.Equal(t, "pkg:golang/github.com/google/uuid@v1.6.0", field(t, pkgs["github.com/google/uuid"]["v1.6.0"]["externalRefs"].([]any)[0], "referenceLocator"))
		require.Contains(t, pkgs, "istio.io/istio")
		assert.Contains(t, pkgs["istio.io/istio"], "1.0.0", "the main module at the recipe's version")
		require.Contains(t, pkgs, "stdlib")
		require.Contains(t, pkgs["stdlib"], "go1.23.4", "the builder's toolchain")
		assert.Contains(t, pkgs["stdlib"]["go1.23.4"]["comment"], "/usr/local/bin/pilot-")
		for _, nv := range debs {
			n, v, _ := strings.Cut(nv, "=")
			if assert.Contains(t, pkgs, n, "%s: Debian package %s", im.Name, n) {
				assert.Contains(t, pkgs[n], v, "version of %s", n)
			}
		}
		require.Contains(t, pkgs, "iptables")

		// Signature: verifies with our key, not with another.
		assert.True(t, verifyCosign(t, ref, publicKey(t, pub), opts), "%s: signed with our key", im.Name)
		assert.False(t, verifyCosign(t, ref, publicKey(t, otherPub), opts))
		require.NoError(t, attest.VerifySignature(ctx, ref, publicKey(t, pub), opts...))
		require.ErrorIs(t, attest.VerifySignature(ctx, ref, publicKey(t, otherPub), opts...), attest.ErrBadSignature)
	}
	// pilot's SBOM names pilot-discovery, not proxyv2's binaries.
	pilotRef := res.Images[0].Tag.Context().Digest(res.Images[0].Digest.String())
	sbom := readAttachment(t, pilotRef, referrersOf(t, pilotRef, opts)["application/spdx+json"][0], opts)
	for _, p := range field(t, sbom, "packages").([]any) {
		if field(t, p, "name") == "github.com/google/uuid" {
			assert.Equal(t, "go module; in: /usr/local/bin/pilot-discovery", field(t, p, "comment"))
		}
	}

	// Nothing changed: up to date, nothing new attached.
	again, err := builder.Build(ctx, r, o)
	require.NoError(t, err)
	require.True(t, again.UpToDate)
	for i, im := range again.Images {
		assert.Equal(t, res.Images[i].Provenance, im.Provenance)
		assert.Equal(t, res.Images[i].SBOM, im.SBOM)
		assert.Equal(t, res.Images[i].Signature, im.Signature)
		refs := referrersOf(t, im.Tag.Context().Digest(im.Digest.String()), opts)
		assert.Len(t, refs["application/vnd.in-toto+json"], 1)
	}

	// pilot as pushed before attestations existed: no referrers, no
	// signature. proxyv2 only unsigned.
	pilot, proxy := res.Images[0], res.Images[1]
	fallback := pilot.Tag.Context().Tag("sha256-" + pilot.Digest.Hex)
	desc, err := remote.Head(fallback, opts...)
	require.NoError(t, err, "our registry has no referrers API: ggcr keeps the fallback tag")
	require.NoError(t, remote.Delete(pilot.Tag.Context().Digest(desc.Digest.String()), opts...))
	for _, im := range []builder.ImageResult{pilot, proxy} {
		require.NoError(t, remote.Delete(im.Tag.Context().Digest(im.Signature), opts...))
		assert.ErrorIs(t, attest.VerifySignature(ctx, im.Tag.Context().Digest(im.Digest.String()), publicKey(t, pub), opts...), attest.ErrNotSigned)
	}
	assert.Empty(t, referrersOf(t, pilot.Tag.Context().Digest(pilot.Digest.String()), opts))

	o.Trigger = builder.Trigger{Actor: "alice", Kind: "cli"}
	rebuilt, err := builder.Build(ctx, r, o)
	require.NoError(t, err)
	assert.False(t, rebuilt.UpToDate, "an image without provenance is rebuilt")
	for i, im := range rebuilt.Images {
		assert.Equal(t, res.Images[i].Digest, im.Digest, "%s: the same image", im.Name)
		assert.True(t, im.Unchanged)
		ref := im.Tag.Context().Digest(im.Digest.String())
		refs := referrersOf(t, ref, opts)
		require.Len(t, refs["application/vnd.in-toto+json"], 1)
		require.Len(t, refs["application/spdx+json"], 1)
		assert.True(t, verifyCosign(t, ref, publicKey(t, pub), opts), "%s: signed again", im.Name)
	}
	prov := readAttachment(t, pilotRef, referrersOf(t, pilotRef, opts)["application/vnd.in-toto+json"][0], opts)
	assert.Equal(t, "alice", field(t, prov, "predicate.buildDefinition.internalParameters.trigger.actor"), "pilot's new provenance")
	assert.NotEqual(t, res.Images[0].Provenance, rebuilt.Images[0].Provenance)
	assert.Equal(t, res.Images[1].Provenance, rebuilt.Images[1].Provenance, "proxyv2 keeps its provenance")

	// Unsigned but otherwise complete: signed without a rebuild.
	require.NoError(t, remote.Delete(proxy.Tag.Context().Digest(rebuilt.Images[1].Signature), opts...))
	signed, err := builder.Build(ctx, r, o)
	require.NoError(t, err)
	assert.True(t, signed.UpToDate)
	assert.True(t, verifyCosign(t, proxy.Tag.Context().Digest(proxy.Digest.String()), publicKey(t, pub), opts))
}
