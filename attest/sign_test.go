package attest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/internal/testenv"
)

// pushRandom pushes a random image to the test registry by digest.
func pushRandom(t *testing.T, e *testenv.Env, repo string) (name.Digest, v1.Image) {
	t.Helper()
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	d, err := img.Digest()
	require.NoError(t, err)
	tag, err := e.Registry.Tag(repo, "x")
	require.NoError(t, err)
	ref := tag.Context().Digest(d.String())
	require.NoError(t, remote.Write(ref, img, e.Registry.Remote(context.Background())...))
	return ref, img
}

func newKey(t *testing.T) (*attest.Key, []byte) {
	t.Helper()
	priv, pub, err := attest.GenerateKey()
	require.NoError(t, err)
	k, err := attest.ParseKey(priv)
	require.NoError(t, err)
	return k, pub
}

// An attachment is an OCI artifact manifest: artifactType, the empty
// config, one layer of that type, the subject and annotations; pushed to
// our registry, ggcr's Referrers lists it with its artifactType.
func TestAttachmentPushedAsReferrer(t *testing.T) {
	e := testenv.Registry(t)
	ctx := context.Background()
	ref, img := pushRandom(t, e, "attest/referrers")
	subject, err := partial.Descriptor(img)
	require.NoError(t, err)
	created := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	doc := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	att, err := attest.Attachment(*subject, attest.ProvenanceArtifactType, attest.KindProvenance, doc, created)
	require.NoError(t, err)

	m, err := att.Manifest()
	require.NoError(t, err)
	assert.Equal(t, types.OCIManifestSchema1, m.MediaType)
	assert.Equal(t, attest.ProvenanceArtifactType, m.ArtifactType)
	assert.Equal(t, types.OCIEmptyJSON, m.Config.MediaType)
	assert.Equal(t, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", m.Config.Digest.String())
	assert.EqualValues(t, 2, m.Config.Size)
	require.Len(t, m.Layers, 1)
	assert.Equal(t, types.MediaType(attest.ProvenanceArtifactType), m.Layers[0].MediaType)
	require.NotNil(t, m.Subject)
	assert.Equal(t, ref.DigestStr(), m.Subject.Digest.String())
	assert.Equal(t, "2025-03-01T10:00:00Z", m.Annotations[attest.AnnotationCreated])
	assert.Equal(t, "provenance", m.Annotations[attest.AnnotationKind])

	ad, err := att.Digest()
	require.NoError(t, err)
	opts := e.Registry.Remote(ctx)
	require.NoError(t, remote.Write(ref.Context().Digest(ad.String()), att, opts...))

	idx, err := remote.Referrers(ref, opts...)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	assert.Equal(t, ad, im.Manifests[0].Digest)
	assert.Equal(t, attest.ProvenanceArtifactType, im.Manifests[0].ArtifactType)

	// The document comes back byte for byte.
	got, err := remote.Image(ref.Context().Digest(ad.String()), opts...)
	require.NoError(t, err)
	layers, err := got.Layers()
	require.NoError(t, err)
	rc, err := layers[0].Compressed()
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Equal(t, doc, b)
}

func TestSignAndVerify(t *testing.T) {
	e := testenv.Registry(t)
	ctx := context.Background()
	opts := e.Registry.Remote(ctx)
	ref, _ := pushRandom(t, e, "attest/signed")
	key, pubPEM := newKey(t)
	pub, err := attest.ParsePublicKey(pubPEM)
	require.NoError(t, err)
	other, _ := newKey(t)

	// Not signed yet.
	err = attest.VerifySignature(ctx, ref, pub, opts...)
	require.ErrorIs(t, err, attest.ErrNotSigned)

	d1, err := attest.Sign(ctx, ref, key, opts...)
	require.NoError(t, err)
	require.NoError(t, attest.VerifySignature(ctx, ref, pub, opts...))
	err = attest.VerifySignature(ctx, ref, other.Public(), opts...)
	require.ErrorIs(t, err, attest.ErrBadSignature)

	// The tag is cosign's, and names what Sign returned; the layer is the
	// simple-signing payload for this digest.
	tag := attest.SignatureTag(ref)
	assert.Equal(t, "sha256-"+ref.DigestStr()[len("sha256:"):]+".sig", tag.TagStr())
	sigImg, err := remote.Image(tag, opts...)
	require.NoError(t, err)
	sd, err := sigImg.Digest()
	require.NoError(t, err)
	assert.Equal(t, d1, sd)
	m, err := sigImg.Manifest()
	require.NoError(t, err)
	require.Len(t, m.Layers, 1)
	assert.Equal(t, types.MediaType(attest.SimpleSigningMediaType), m.Layers[0].MediaType)
	assert.NotEmpty(t, m.Layers[0].Annotations[attest.SignatureAnnotation])
	l, err := sigImg.LayerByDigest(m.Layers[0].Digest)
	require.NoError(t, err)
	rc, err := l.Compressed()
	require.NoError(t, err)
	pl, err := io.ReadAll(rc)
	require.NoError(t, err)
	var simple struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image struct {
				DockerManifestDigest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	require.NoError(t, json.Unmarshal(pl, &simple))
	assert.Equal(t, ref.Context().Name(), simple.Critical.Identity.DockerReference)
	assert.Equal(t, ref.DigestStr(), simple.Critical.Image.DockerManifestDigest)
	assert.Equal(t, "cosign container image signature", simple.Critical.Type)

	// Signing again with the same key writes nothing new.
	d2, err := attest.Sign(ctx, ref, key, opts...)
	require.NoError(t, err)
	assert.Equal(t, d1, d2)

	// Another key adds its signature next to ours; both verify.
	d3, err := attest.Sign(ctx, ref, other, opts...)
	require.NoError(t, err)
	assert.NotEqual(t, d1, d3)
	require.NoError(t, attest.VerifySignature(ctx, ref, pub, opts...))
	require.NoError(t, attest.VerifySignature(ctx, ref, other.Public(), opts...))
	sigImg, err = remote.Image(tag, opts...)
	require.NoError(t, err)
	m, err = sigImg.Manifest()
	require.NoError(t, err)
	assert.Len(t, m.Layers, 2)
}

// A signature for one image does not verify another image, even when
// copied to its tag.
func TestVerifyRejectsSignatureOfAnotherImage(t *testing.T) {
	e := testenv.Registry(t)
	ctx := context.Background()
	opts := e.Registry.Remote(ctx)
	a, _ := pushRandom(t, e, "attest/a")
	b, _ := pushRandom(t, e, "attest/a")
	key, _ := newKey(t)
	_, err := attest.Sign(ctx, a, key, opts...)
	require.NoError(t, err)
	sigA, err := remote.Image(attest.SignatureTag(a), opts...)
	require.NoError(t, err)
	require.NoError(t, remote.Write(attest.SignatureTag(b), sigA, opts...))
	err = attest.VerifySignature(ctx, b, key.Public(), opts...)
	require.ErrorIs(t, err, attest.ErrBadSignature)
	assert.Contains(t, err.Error(), "signs "+a.DigestStr())
}

func TestKeys(t *testing.T) {
	priv, pub, err := attest.GenerateKey()
	require.NoError(t, err)
	blk, _ := pem.Decode(priv)
	require.NotNil(t, blk)
	assert.Equal(t, "PRIVATE KEY", blk.Type)
	pk, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	require.NoError(t, err)
	assert.Equal(t, elliptic.P256(), pk.(*ecdsa.PrivateKey).Curve)
	blk, _ = pem.Decode(pub)
	require.NotNil(t, blk)
	assert.Equal(t, "PUBLIC KEY", blk.Type)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "k"), priv, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "k.pub"), pub, 0o644))
	k, err := attest.LoadKey(filepath.Join(dir, "k"))
	require.NoError(t, err)
	p, err := attest.LoadPublicKey(filepath.Join(dir, "k.pub"))
	require.NoError(t, err)
	assert.True(t, k.Public().(*ecdsa.PublicKey).Equal(p))
	pp, err := k.PublicPEM()
	require.NoError(t, err)
	assert.Equal(t, pub, pp)

	_, err = attest.LoadKey(filepath.Join(dir, "missing"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "signing key")

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	require.NoError(t, err)
	_, err = attest.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not an ECDSA P-256 key")

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	der, err = x509.MarshalPKCS8PrivateKey(p384)
	require.NoError(t, err)
	_, err = attest.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	require.Error(t, err)

	_, err = attest.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("x")}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "encrypted")
	_, err = attest.ParseKey([]byte("not pem"))
	require.Error(t, err)
	_, err = attest.ParseKey(bytes.Repeat([]byte{0}, 10))
	require.Error(t, err)
}
