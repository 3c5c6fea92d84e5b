package publish

import (
	"context"
	"errors"
	"fmt"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
)

// Signed signs what inner publishes with key: each image gets a cosign
// signature (simple signing, under its .sig tag in a registry) and each
// attestation becomes a DSSE envelope signed with the same key, which the
// registry also keeps under the image's .att tag, where `cosign
// verify-attestation` looks. Signatures are deterministic, so signing the
// same image again changes nothing.
func Signed(inner Publisher, key *attest.Key) Publisher {
	return &signed{inner: inner, key: key}
}

type signed struct {
	inner Publisher
	key   *attest.Key
}

func (s *signed) Publish(ctx context.Context, res *builder.Result) ([]api.Image, error) {
	if s.key == nil {
		return nil, errors.New("publish.Signed: no key")
	}
	out := res.Clone()
	for i := range out.Images {
		im := &out.Images[i]
		// An index is signed as cosign sign --recursive signs it: the
		// index's digest, and each of its images'.
		for j := range im.Manifests {
			if err := s.sign(&im.Manifests[j]); err != nil {
				return nil, err
			}
		}
		if err := s.sign(im); err != nil {
			return nil, err
		}
	}
	return s.inner.Publish(ctx, out)
}

// sign signs im's digest and its attestations.
func (s *signed) sign(im *builder.Image) error {
	sig, err := attest.Signature(im.Tag.Context().Digest(im.Digest.String()), s.key)
	if err != nil {
		return err
	}
	im.Signature = &sig
	for j, a := range im.Attestations {
		if im.Attestations[j], err = a.Sign(s.key); err != nil {
			return fmt.Errorf("image %s: %w", im.Name, err)
		}
	}
	return nil
}
