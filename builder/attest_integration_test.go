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

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
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

// readAttachment checks an attachment's manifest and returns its document:
// the layer itself, or for a signed one the statement in its DSSE
// envelope, whose signature must verify with pub (read with crypto/ecdsa
// here, not sailmaker's code).
func readAttachment(t *testing.T, subject name.Digest, d v1.Descriptor, opts []remote.Option, pub ...*ecdsa.PublicKey) map[string]any {
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
	layers, err := img.Layers()
	require.NoError(t, err)
	rc, err := layers[0].Compressed()
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	if len(pub) == 0 {
		assert.Equal(t, d.ArtifactType, string(m.Layers[0].MediaType))
		assert.Empty(t, m.Annotations["dev.sailmaker.signed"])
		var doc map[string]any
		require.NoError(t, json.Unmarshal(b, &doc), string(b))
		return doc
	}
	assert.Equal(t, "application/vnd.dsse.envelope.v1+json", string(m.Layers[0].MediaType))
	assert.Equal(t, "true", m.Annotations["dev.sailmaker.signed"])
	statement, ok := openDSSE(t, b, pub[0])
	require.True(t, ok, "the DSSE envelope verifies with our key")
	return statement
}

// openDSSE checks a DSSE envelope's signature over PAE(type, payload) with
// crypto/ecdsa and returns the in-toto statement it carries.
func openDSSE(t *testing.T, envelope []byte, pub *ecdsa.PublicKey) (map[string]any, bool) {
	t.Helper()
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	require.NoError(t, json.Unmarshal(envelope, &env))
	assert.Equal(t, "application/vnd.in-toto+json", env.PayloadType)
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	require.NoError(t, err)
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(env.PayloadType), env.PayloadType, len(payload), payload)
	sum := sha256.Sum256([]byte(pae))
	var statement map[string]any
	require.NoError(t, json.Unmarshal(payload, &statement))
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		require.NoError(t, err)
		if ecdsa.VerifyASN1(pub, sum[:], sig) {
			return statement, true
		}
	}
	return statement, false
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
// OCI referrers. Without a key they are plain documents; a later build
// with a key builds the same images again, to the same digests, and adds
// signed ones: DSSE envelopes (also under cosign's .att tag) and a cosign
// signature. A build after that adds nothing; a lost signature comes back
// without a rebuild.
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

	// 1. No key: plain attachments.
	triggered := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	req := builder.Request{Trigger: api.Trigger{Actor: "ci-bot", Kind: "webhook", DeliveryID: "delivery-123", BuildID: "build-9", Time: triggered}}
	res, err := buildAndPublish(t, e, r, req, publish.Settings{})
	require.NoError(t, err)
	require.Len(t, res.Published, 5, "pilot, proxyv2, istio-cni, istioctl, istioctl-versions")

	// The image is built on the base's linux/amd64 image; a single-platform
	// recipe's provenance names the base as its tag resolves (the index).
	bw := bases["base/bookworm"]
	amd64, err := base.ParsePlatform("linux/amd64")
	require.NoError(t, err)
	baseImg, _, err := base.PlatformImage(ctx, e.Registry, bw.Tag.Context().Digest(bw.Digest.String()), amd64)
	require.NoError(t, err)
	baseDigest := bw.Digest
	bcf, err := baseImg.ConfigFile()
	require.NoError(t, err)
	debs := strings.Split(bcf.Config.Labels[base.LabelPackages], ",")
	require.Greater(t, len(debs), 20, "the base lists its Debian packages")

	for _, im := range res.Published {
		ref := refOf(t, im)
		refs := referrersOf(t, ref, opts)
		require.Len(t, refs["application/vnd.in-toto+json"], 1, "%s: one provenance", im.Name)
		require.Len(t, refs["application/spdx+json"], 1, "%s: one SBOM", im.Name)
		provDesc, sbomDesc := refs["application/vnd.in-toto+json"][0], refs["application/spdx+json"][0]
		assert.Equal(t, provDesc.Digest.String(), im.Provenance)
		assert.Equal(t, sbomDesc.Digest.String(), im.SBOM)
		assert.Empty(t, im.Signature, "no key, no signature")
		assert.Empty(t, im.Attestations)

		if im.Package != nil {
			checkPackageAttestations(t, im, repo, readAttachment(t, ref, provDesc, opts), readAttachment(t, ref, sbomDesc, opts))
			continue
		}
		checkProvenance(t, readAttachment(t, ref, provDesc, opts), checks{
			image: im, repo: repo, recipe: r, bases: bases, baseDigest: baseDigest, envoySHA: envoySHA, patch: patch,
			inputsKey: res.InputsKey, buildKit: bkVersion, actor: "ci-bot", invocation: "build-9",
		})
		checkSBOM(t, im.Name, readAttachment(t, ref, sbomDesc, opts), debs)
	}
	// pilot's SBOM names pilot-discovery, not proxyv2's binaries.
	pilotRef := refOf(t, res.Published[0])
	sbom := readAttachment(t, pilotRef, referrersOf(t, pilotRef, opts)["application/spdx+json"][0], opts)
	for _, p := range field(t, sbom, "packages").([]any) {
		if field(t, p, "name") == "github.com/google/uuid" {
			assert.Equal(t, "go module; in: /usr/local/bin/pilot-discovery", field(t, p, "comment"))
		}
	}

	// 2. With a key: the unsigned images are built again, to the same
	// digests, and get signed attestations and signatures.
	e.Config.Signing.Key = filepath.Join(keyDir, "sailmaker.key")
	req.Trigger = api.Trigger{Actor: "alice", Kind: "cli", BuildID: "cli-1"}
	signed, err := buildAndPublish(t, e, r, req, publish.Settings{})
	require.NoError(t, err)
	assert.False(t, signed.UpToDate, "unsigned attestations: built again")
	for i, im := range signed.Published {
		assert.Equal(t, res.Published[i].Digest, im.Digest, "%s: the same image", im.Name)
		assert.Equal(t, api.StatusUnchanged, im.Status)
		ref := refOf(t, im)
		refs := referrersOf(t, ref, opts)
		require.Len(t, refs["application/vnd.in-toto+json"], 2, "%s: the old provenance and the signed one", im.Name)
		var provDesc, sbomDesc v1.Descriptor
		for _, d := range refs["application/vnd.in-toto+json"] {
			if d.Digest.String() == im.Provenance {
				provDesc = d
			}
		}
		for _, d := range refs["application/spdx+json"] {
			if d.Digest.String() == im.SBOM {
				sbomDesc = d
			}
		}
		require.NotEqual(t, res.Published[i].Provenance, im.Provenance)
		prov := readAttachment(t, ref, provDesc, opts, publicKey(t, pub))
		assert.Equal(t, "alice", field(t, prov, "predicate.buildDefinition.internalParameters.trigger.actor"))
		assert.Equal(t, "cli-1", field(t, prov, "predicate.runDetails.metadata.invocationId"))
		if im.Package == nil && im.Name != "istioctl-versions" {
			// The same bytes on the same bases: validation took what the
			// programs printed in the first build, and says so.
			v := field(t, prov, "predicate.buildDefinition.internalParameters.validation")
			assert.Equal(t, true, field(t, v, "passed"), im.Name)
			bins := field(t, v, "binaries").([]any)
			require.NotEmpty(t, bins, im.Name)
			for _, b := range bins {
				assert.Equal(t, true, field(t, b, "reused"), "%s: %v", im.Name, b)
			}
			if e, ok := v.(map[string]any)["envoy"]; ok {
				assert.Equal(t, true, field(t, e, "reused"), im.Name)
			}
		}
		st := readAttachment(t, ref, sbomDesc, opts, publicKey(t, pub))
		assert.Equal(t, "https://spdx.dev/Document", field(t, st, "predicateType"))
		assert.Equal(t, im.Digest[len("sha256:"):], field(t, field(t, st, "subject").([]any)[0], "digest.sha256"))
		if im.Package == nil {
			checkSBOM(t, im.Name, field(t, st, "predicate").(map[string]any), debs)
		}
		_, ok := openDSSE(t, mustJSON(t, dsseOf(t, ref, provDesc, opts)), publicKey(t, otherPub))
		assert.False(t, ok, "another key does not verify the envelope")

		// cosign's .att tag: the same envelopes, with their predicate types.
		att := cosignLayers(t, ref, ".att", opts)
		require.Len(t, att, 2)
		types := map[string]bool{}
		for _, l := range att {
			assert.Equal(t, "application/vnd.dsse.envelope.v1+json", l.mediaType)
			types[l.annotations["predicateType"]] = true
			_, ok := openDSSE(t, l.content, publicKey(t, pub))
			assert.True(t, ok)
		}
		assert.Equal(t, map[string]bool{"https://slsa.dev/provenance/v1": true, "https://spdx.dev/Document": true}, types)

		// Signature: verifies with our key, not with another.
		assert.True(t, verifyCosign(t, ref, publicKey(t, pub), opts), "%s: signed with our key", im.Name)
		assert.False(t, verifyCosign(t, ref, publicKey(t, otherPub), opts))
		require.NoError(t, attest.VerifySignature(ctx, ref, publicKey(t, pub), opts...))
		require.ErrorIs(t, attest.VerifySignature(ctx, ref, publicKey(t, otherPub), opts...), attest.ErrBadSignature)
	}

	// 3. Nothing changed: up to date, nothing new attached or signed.
	again, err := buildAndPublish(t, e, r, req, publish.Settings{})
	require.NoError(t, err)
	require.True(t, again.UpToDate)
	for i, im := range again.Published {
		assert.Equal(t, signed.Published[i].Provenance, im.Provenance)
		assert.Equal(t, signed.Published[i].SBOM, im.SBOM)
		assert.Equal(t, signed.Published[i].Signature, im.Signature)
		ref := refOf(t, im)
		assert.Len(t, referrersOf(t, ref, opts)["application/vnd.in-toto+json"], 2)
		assert.Len(t, cosignLayers(t, ref, ".sig", opts), 1, "signing again adds no signature")
	}

	// The embedded registry serves the referrers API: no referrers
	// fallback tag (sha256-<hex>) next to the images, only cosign's .sig
	// and .att tags.
	for _, im := range signed.Published {
		tags, err := remote.List(refOf(t, im).Context(), opts...)
		require.NoError(t, err)
		hex := strings.TrimPrefix(im.Digest, "sha256:")
		assert.ElementsMatch(t, []string{im.Tag, "sha256-" + hex + ".sig", "sha256-" + hex + ".att"}, tags, "%s: no fallback tag", im.Name)
	}

	// 4. A lost signature comes back without a rebuild.
	proxy := signed.Published[1]
	require.NoError(t, remote.Delete(refOf(t, proxy).Context().Digest(proxy.Signature), opts...))
	assert.ErrorIs(t, attest.VerifySignature(ctx, refOf(t, proxy), publicKey(t, pub), opts...), attest.ErrNotSigned)
	resigned, err := buildAndPublish(t, e, r, req, publish.Settings{})
	require.NoError(t, err)
	assert.True(t, resigned.UpToDate)
	assert.True(t, verifyCosign(t, refOf(t, proxy), publicKey(t, pub), opts))
	assert.Equal(t, proxy.Signature, resigned.Published[1].Signature, "signatures are deterministic")
}

// checks are what a provenance statement must say.
type checks struct {
	image      api.Image
	repo       *fixture.Repo
	recipe     *recipes.Recipe
	bases      map[string]registry.Pushed
	baseDigest v1.Hash
	envoySHA   string
	patch      string
	inputsKey  string
	buildKit   string
	actor      string
	invocation string
}

func checkProvenance(t *testing.T, prov map[string]any, c checks) {
	t.Helper()
	im, repo, bases := c.image, c.repo, c.bases
	assert.Equal(t, "https://in-toto.io/Statement/v1", field(t, prov, "_type"))
	assert.Equal(t, "https://slsa.dev/provenance/v1", field(t, prov, "predicateType"))
	subj := field(t, prov, "subject").([]any)[0]
	assert.Equal(t, im.Digest[len("sha256:"):], field(t, subj, "digest.sha256"))
	assert.Equal(t, im.Repository, field(t, subj, "name"))
	x := field(t, prov, "predicate.buildDefinition.externalParameters")
	assert.Equal(t, repo.Commit, field(t, x, "source.commit"))
	assert.Equal(t, "1.0.0", field(t, x, "source.tag"))
	assert.Equal(t, repo.URL, field(t, x, "source.git"))
	assert.Equal(t, c.recipe.Digest(), field(t, x, "recipe.digest"))
	assert.Equal(t, bases["builder/go1.23.4"].Digest.String(), field(t, x, "toolchain.builderDigest"))
	assert.Equal(t, "1.23.4", field(t, x, "toolchain.go"))
	assert.Equal(t, c.baseDigest.String(), field(t, x, "base.digest"))
	assert.Equal(t, c.envoySHA, field(t, x, "envoy.sha256"))
	assert.Equal(t, repo.ProxySHA, field(t, x, "envoy.proxySha"))
	assert.Contains(t, field(t, x, "envoy.url"), fixture.EnvoyTarballName(repo.ProxySHA))
	assert.Equal(t, "1.0.0", field(t, x, "make.variables.VERSION"))
	assert.Equal(t, []any{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent", "out/linux_amd64/istioctl", "out/linux_amd64/istio-cni"}, field(t, x, "make.targets"))
	assert.Equal(t, im.Name, field(t, x, "image.name"))
	assert.Equal(t, []any{map[string]any{"path": "readme.patch", "sha256": sha([]byte(c.patch))}}, field(t, x, "patches"))
	in := field(t, prov, "predicate.buildDefinition.internalParameters")
	assert.Equal(t, c.actor, field(t, in, "trigger.actor"))
	assert.Equal(t, "webhook", field(t, in, "trigger.kind"))
	assert.Equal(t, "delivery-123", field(t, in, "trigger.deliveryId"))
	assert.Equal(t, "2025-03-01T09:30:00Z", field(t, in, "trigger.time"))
	assert.Equal(t, c.inputsKey, field(t, in, "inputsKey"))
	assert.Equal(t, c.buildKit, field(t, in, "buildkitVersion"), "the daemon's BuildKit version")
	assert.Equal(t, c.invocation, field(t, prov, "predicate.runDetails.metadata.invocationId"))
	// The recipe applies a patch: the binaries report the tree as modified
	// (revision -dirty, status Modified), and the validation says why.
	v := field(t, in, "validation")
	assert.Equal(t, true, field(t, v, "passed"))
	assert.Equal(t, true, field(t, v, "expected.patched"))
	assert.Equal(t, repo.Commit+"-dirty", field(t, v, "expected.revision"))
	for _, b := range field(t, v, "binaries").([]any) {
		assert.Equal(t, repo.Commit+"-dirty", field(t, b, "revision"))
		assert.Equal(t, "Modified", field(t, b, "status"))
		assert.Equal(t, "1.0.0", field(t, b, "version"))
	}
	deps := map[string]any{}
	for _, d := range field(t, prov, "predicate.buildDefinition.resolvedDependencies").([]any) {
		deps[field(t, d, "uri").(string)] = field(t, d, "digest")
	}
	reg := strings.SplitN(im.Repository, "/", 2)[0]
	assert.Equal(t, map[string]any{"gitCommit": repo.Commit}, deps["git+"+repo.URL+"@refs/tags/1.0.0"])
	assert.Equal(t, map[string]any{"sha256": c.baseDigest.Hex}, deps[reg+"/base/bookworm:2"])
	assert.Equal(t, map[string]any{"sha256": bases["builder/go1.23.4"].Digest.Hex}, deps[reg+"/builder/go1.23.4:1"])
	assert.Equal(t, map[string]any{"sha256": c.envoySHA}, deps[field(t, x, "envoy.url").(string)])
	assert.Equal(t, map[string]any{"sha256": sha([]byte(c.patch))}, deps["file:readme.patch"])
}

// checkSBOM: the fixture's third-party module, the main module at the
// recipe's version, the toolchain, the base's Debian packages.
func checkSBOM(t *testing.T, image string, sbom map[string]any, debs []string) {
	t.Helper()
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
	require.Contains(t, pkgs, "github.com/google/uuid", "%s: the SBOM lists the fixture's module", image)
	require.Contains(t, pkgs["github.com/google/uuid"], "v1.6.0")
	assert.Equal(t, "pkg:golang/github.com/google/uuid@v1.6.0", field(t, pkgs["github.com/google/uuid"]["v1.6.0"]["externalRefs"].([]any)[0], "referenceLocator"))
	require.Contains(t, pkgs, "istio.io/istio")
	assert.Contains(t, pkgs["istio.io/istio"], "1.0.0", "the main module at the recipe's version")
	require.Contains(t, pkgs, "stdlib")
	require.Contains(t, pkgs["stdlib"], "go1.23.4", "the builder's toolchain")
	assert.Contains(t, pkgs["stdlib"]["go1.23.4"]["comment"], "/usr/local/bin/pilot-")
	for _, nv := range debs {
		n, v, _ := strings.Cut(nv, "=")
		if assert.Contains(t, pkgs, n, "%s: Debian package %s", image, n) {
			assert.Contains(t, pkgs[n], v, "version of %s", n)
		}
	}
	require.Contains(t, pkgs, "iptables")
}

func refOf(t *testing.T, im api.Image) name.Digest {
	t.Helper()
	d, err := name.NewDigest(im.Reference, name.Insecure)
	require.NoError(t, err)
	return d
}

// dsseOf reads a signed attachment's envelope as JSON.
func dsseOf(t *testing.T, subject name.Digest, d v1.Descriptor, opts []remote.Option) map[string]any {
	t.Helper()
	img, err := remote.Image(subject.Context().Digest(d.Digest.String()), opts...)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	rc, err := layers[0].Compressed()
	require.NoError(t, err)
	defer rc.Close()
	var env map[string]any
	require.NoError(t, json.NewDecoder(rc).Decode(&env))
	return env
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

type cosignLayer struct {
	mediaType   string
	annotations map[string]string
	content     []byte
}

// cosignLayers reads the layers under an image's cosign tag (.sig, .att).
func cosignLayers(t *testing.T, ref name.Digest, suffix string, opts []remote.Option) []cosignLayer {
	t.Helper()
	tag := ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + suffix)
	img, err := remote.Image(tag, opts...)
	require.NoError(t, err, "the tag %s", tag)
	m, err := img.Manifest()
	require.NoError(t, err)
	var out []cosignLayer
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		require.NoError(t, err)
		rc, err := layer.Compressed()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		out = append(out, cosignLayer{mediaType: string(l.MediaType), annotations: l.Annotations, content: b})
	}
	return out
}
