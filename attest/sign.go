package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Cosign's names for signature layers.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation    = "dev.cosignproject.cosign/signature"
	SignatureTagSuffix     = ".sig"
)

var (
	// ErrNotSigned is returned by VerifySignature when the image has no
	// signature tag.
	ErrNotSigned = errors.New("image is not signed")
	// ErrBadSignature is returned by VerifySignature when the image has
	// signatures but none verifies with the key.
	ErrBadSignature = errors.New("no signature of the image verifies with the key")
)

// Key is an ECDSA P-256 signing key.
type Key struct {
	priv *ecdsa.PrivateKey
}

// GenerateKey makes a new ECDSA P-256 key pair: the private key as PEM
// PKCS#8 ("PRIVATE KEY", unencrypted), the public key as PEM PKIX
// ("PUBLIC KEY"), the format `cosign verify --key` reads.
func GenerateKey() (privPEM, pubPEM []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if privPEM, err = cryptoutils.MarshalPrivateKeyToPEM(priv); err != nil {
		return nil, nil, err
	}
	if pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public()); err != nil {
		return nil, nil, err
	}
	return privPEM, pubPEM, nil
}

// LoadKey reads a private key file (see ParseKey).
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the signing key: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey reads an unencrypted ECDSA P-256 private key in PEM: PKCS#8
// ("PRIVATE KEY", what GenerateKey writes) or SEC 1 ("EC PRIVATE KEY").
func ParseKey(pemBytes []byte) (*Key, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("not a PEM file")
	}
	if strings.Contains(blk.Type, "ENCRYPTED") {
		return nil, fmt.Errorf("the key is encrypted (%s); sailmaker needs an unencrypted PKCS#8 key, as `sailmaker signing keygen` writes", blk.Type)
	}
	pk, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, nil)
	if err != nil {
		return nil, err
	}
	priv, ok := pk.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("the key is a %T, not an ECDSA P-256 key", pk)
	}
	return &Key{priv: priv}, nil
}

// Public is the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.priv.Public() }

// PublicPEM is the public key as PEM PKIX.
func (k *Key) PublicPEM() ([]byte, error) { return cryptoutils.MarshalPublicKeyToPEM(k.priv.Public()) }

// LoadPublicKey reads a PEM public key file (PKIX, "PUBLIC KEY").
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the public key: %w", err)
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// ParsePublicKey reads a PEM public key (PKIX, "PUBLIC KEY").
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	return cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
}

// SignatureTag is cosign's signature tag for an image:
// <repo>:sha256-<hex>.sig.
func SignatureTag(ref name.Digest) name.Tag {
	return ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + SignatureTagSuffix)
}

// SignaturePayload is the simple-signing payload cosign signs for ref:
// the repository as identity and the manifest digest.
func SignaturePayload(ref name.Digest) ([]byte, error) {
	return payload.Cosign{Image: ref}.MarshalJSON()
}

// Sign makes sure the image ref has a signature by key under its cosign
// signature tag, and returns the digest of the signature manifest. A
// signature by the same key already there is kept (signatures are
// deterministic, so nothing is written); signatures by other keys stay,
// ours is added as one more layer, as cosign does.
func Sign(ctx context.Context, ref name.Digest, key *Key, opts ...remote.Option) (v1.Hash, error) {
	if key == nil {
		return v1.Hash{}, errors.New("attest.Sign: no key")
	}
	sig, err := Signature(ref, key)
	if err != nil {
		return v1.Hash{}, err
	}
	return WriteTagged(ctx, ref, sig, opts...)
}

// Signature is the cosign signature of ref by key, for its .sig tag: the
// simple-signing payload with its signature in an annotation. The
// signature is deterministic (RFC 6979).
func Signature(ref name.Digest, key *Key) (Tagged, error) {
	if key == nil {
		return Tagged{}, errors.New("attest.Signature: no key")
	}
	pl, err := SignaturePayload(ref)
	if err != nil {
		return Tagged{}, err
	}
	sig, err := key.signMessage(pl)
	if err != nil {
		return Tagged{}, fmt.Errorf("signing %s: %w", ref, err)
	}
	return Tagged{Suffix: SignatureTagSuffix, Layers: []TaggedLayer{{
		MediaType:   SimpleSigningMediaType,
		Content:     pl,
		Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	}}}, nil
}

// VerifySignature checks that the image ref has, under its cosign
// signature tag, a simple-signing payload naming ref's digest whose
// signature verifies with pub. It wraps ErrNotSigned when there is no
// signature tag, ErrBadSignature when none of its signatures verifies.
func VerifySignature(ctx context.Context, ref name.Digest, pub crypto.PublicKey, opts ...remote.Option) error {
	if pub == nil {
		return errors.New("attest.VerifySignature: no public key")
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("loading the public key: %w", err)
	}
	opts = withContext(ctx, opts)
	tag := SignatureTag(ref)
	img, err := remote.Image(tag, opts...)
	if isNotFound(err) {
		return fmt.Errorf("%w: %s has no signature tag %s", ErrNotSigned, ref, tag.TagStr())
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading %s: %w", tag, err)
	}
	var why []string
	for i, l := range m.Layers {
		sig, ok := l.Annotations[SignatureAnnotation]
		if !ok {
			why = append(why, fmt.Sprintf("layer %d: no %s annotation", i, SignatureAnnotation))
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return fmt.Errorf("reading %s: %w", tag, err)
		}
		pl, err := readLayer(layer)
		if err != nil {
			return fmt.Errorf("reading %s layer %s: %w", tag, l.Digest, err)
		}
		var p payload.Cosign
		if err := p.UnmarshalJSON(pl); err != nil {
			why = append(why, fmt.Sprintf("layer %d: %v", i, err))
			continue
		}
		if p.Image.DigestStr() != ref.DigestStr() {
			why = append(why, fmt.Sprintf("layer %d: signs %s, not %s", i, p.Image.DigestStr(), ref.DigestStr()))
			continue
		}
		if err := verifyB64(v, sig, pl); err != nil {
			why = append(why, fmt.Sprintf("layer %d: %v", i, err))
			continue
		}
		return nil
	}
	if len(why) == 0 {
		why = append(why, "no signature layers")
	}
	return fmt.Errorf("%w: %s (%s)", ErrBadSignature, ref, strings.Join(why, "; "))
}

func verifyB64(v signature.Verifier, b64 string, pl []byte) error {
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pl))
}

func readLayer(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

func withContext(ctx context.Context, opts []remote.Option) []remote.Option {
	return append(slices.Clone(opts), remote.WithContext(ctx))
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
