package audit

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/sailmaker/sailmaker/attest"
)

// Errors a SignatureVerifier wraps. Any other error means the signature
// could not be read (the image counts as unreadable, not as unsigned).
var (
	// ErrSignatureMissing: the image has no signature.
	ErrSignatureMissing = errors.New("no signature")
	// ErrSignatureInvalid: there is a signature, and it does not verify
	// with the key or does not name the image.
	ErrSignatureInvalid = errors.New("signature does not verify")
)

// SignatureVerifier checks the signature of the image ref names, reading
// the registry with opts. It returns nil for a valid signature, an error
// wrapping ErrSignatureMissing or ErrSignatureInvalid, or another error
// when it could not tell.
type SignatureVerifier interface {
	VerifySignature(ctx context.Context, ref name.Digest, opts ...remote.Option) error
}

// VerifierFunc adapts a function, such as a closure over
// attest.VerifySignature and a key, to a SignatureVerifier.
type VerifierFunc func(ctx context.Context, ref name.Digest, opts ...remote.Option) error

// VerifySignature calls f.
func (f VerifierFunc) VerifySignature(ctx context.Context, ref name.Digest, opts ...remote.Option) error {
	return f(ctx, ref, opts...)
}

// EnvelopeVerifier checks the signature of a DSSE envelope (a signed
// provenance or SBOM). A SignatureVerifier that is one also checks the
// attestations; KeyVerifier is.
type EnvelopeVerifier interface {
	VerifyEnvelope(env *attest.Envelope) error
}

// KeyVerifier verifies cosign-compatible signatures with a public key, with
// attest.VerifySignature: the image <repo>:sha256-<hex>.sig holds
// simple-signing payloads as layers, each with its base64 signature in the
// dev.cosignproject.cosign/signature annotation; the signature is valid when
// one payload names the image's digest and verifies with the key.
type KeyVerifier struct {
	pub crypto.PublicKey
}

// NewKeyVerifier makes a KeyVerifier for pub (ECDSA P-256 as sailmaker
// signs; other key types as sigstore verifies them).
func NewKeyVerifier(pub crypto.PublicKey) (*KeyVerifier, error) {
	if _, err := signature.LoadVerifier(pub, crypto.SHA256); err != nil {
		return nil, fmt.Errorf("loading the signature verification key: %w", err)
	}
	return &KeyVerifier{pub: pub}, nil
}

// LoadPublicKey reads a PEM public key (PKIX, as `sailmaker signing keygen`
// writes sailmaker.pub). s is a file name, or the PEM text itself (as an
// environment variable may hold it).
func LoadPublicKey(s string) (crypto.PublicKey, error) {
	if strings.Contains(s, "-----BEGIN") {
		pub, err := attest.ParsePublicKey([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("parsing the public key (PEM, PKIX): %w", err)
		}
		return pub, nil
	}
	return attest.LoadPublicKey(s)
}

// VerifySignature implements SignatureVerifier.
func (k *KeyVerifier) VerifySignature(ctx context.Context, ref name.Digest, opts ...remote.Option) error {
	err := attest.VerifySignature(ctx, ref, k.pub, opts...)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, attest.ErrNotSigned):
		return fmt.Errorf("%w: %v", ErrSignatureMissing, err)
	case errors.Is(err, attest.ErrBadSignature):
		return fmt.Errorf("%w: %v", ErrSignatureInvalid, err)
	}
	return err
}

// VerifyEnvelope implements EnvelopeVerifier.
func (k *KeyVerifier) VerifyEnvelope(env *attest.Envelope) error {
	_, err := env.Verify(k.pub)
	return err
}
