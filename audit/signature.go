package audit

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
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

// Cosign's layout of a signature (the attestation contract follows it).
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	simpleSigningType      = "cosign container image signature"
	maxSignatureLayers     = 32
	maxPayload             = 1 << 20
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

// KeyVerifier verifies cosign-compatible signatures with a public key: the
// image <repo>:sha256-<hex>.sig holds simple-signing payloads as layers,
// each with its base64 signature in the dev.cosignproject.cosign/signature
// annotation. A signature is valid when one payload verifies with the key
// and names the image's digest.
type KeyVerifier struct {
	v signature.Verifier
}

// NewKeyVerifier makes a KeyVerifier for pub (ECDSA P-256, as the contract
// says; RSA and Ed25519 keys work as sigstore verifies them).
func NewKeyVerifier(pub crypto.PublicKey) (*KeyVerifier, error) {
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading the signature verification key: %w", err)
	}
	return &KeyVerifier{v: v}, nil
}

// LoadPublicKey reads a PEM public key (PKIX). s is a file name, or the PEM
// text itself (as an environment variable may hold it).
func LoadPublicKey(s string) (crypto.PublicKey, error) {
	data := []byte(s)
	if !strings.Contains(s, "-----BEGIN") {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("reading the public key: %w", err)
		}
		data = b
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("parsing the public key (PEM, PKIX): %w", err)
	}
	return pub, nil
}

type simpleSigning struct {
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

// VerifySignature implements SignatureVerifier.
func (k *KeyVerifier) VerifySignature(ctx context.Context, ref name.Digest, opts ...remote.Option) error {
	sigTag := ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + ".sig")
	img, err := remote.Image(sigTag, append(opts, remote.WithContext(ctx))...)
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%s: %w", ref, ErrSignatureMissing)
		}
		return fmt.Errorf("reading %s: %w", sigTag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading %s: %w", sigTag, err)
	}
	if len(m.Layers) == 0 {
		return fmt.Errorf("%s holds no signature: %w", sigTag, ErrSignatureInvalid)
	}
	if len(m.Layers) > maxSignatureLayers {
		return fmt.Errorf("%s holds %d signatures, more than %d: %w", sigTag, len(m.Layers), maxSignatureLayers, ErrSignatureInvalid)
	}
	var reasons []string
	for _, l := range m.Layers {
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[AnnotationSignature])
		if err != nil || len(sig) == 0 {
			reasons = append(reasons, fmt.Sprintf("layer %s has no %s annotation", l.Digest, AnnotationSignature))
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return fmt.Errorf("reading %s: %w", sigTag, err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			return fmt.Errorf("reading %s: %w", sigTag, err)
		}
		payload, err := io.ReadAll(io.LimitReader(rc, maxPayload))
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", sigTag, err)
		}
		if err := k.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload), options.WithContext(ctx)); err != nil {
			reasons = append(reasons, fmt.Sprintf("layer %s does not verify with the key", l.Digest))
			continue
		}
		var ss simpleSigning
		if err := json.Unmarshal(payload, &ss); err != nil {
			reasons = append(reasons, fmt.Sprintf("layer %s is not a simple-signing payload", l.Digest))
			continue
		}
		if ss.Critical.Type != simpleSigningType {
			reasons = append(reasons, fmt.Sprintf("layer %s: type %q", l.Digest, ss.Critical.Type))
			continue
		}
		if ss.Critical.Image.DockerManifestDigest != ref.DigestStr() {
			reasons = append(reasons, fmt.Sprintf("layer %s signs %s, not this image", l.Digest, ss.Critical.Image.DockerManifestDigest))
			continue
		}
		return nil
	}
	return fmt.Errorf("%s: %s: %w", ref, strings.Join(reasons, "; "), ErrSignatureInvalid)
}
