package attest

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Cosign's names for attestations kept under an image's .att tag.
const (
	AttestationTagSuffix = ".att"
	// PredicateTypeAnnotation names the predicate type of an .att layer.
	PredicateTypeAnnotation = "predicateType"
)

// Tagged is what cosign keeps under a tag derived from an image's digest
// (<repo>:sha256-<hex><Suffix>): the image's signatures (.sig) or its
// signed attestations (.att), one layer each. A Tagged is merged into
// what the tag already holds: layers from other keys or builds stay.
type Tagged struct {
	Suffix string
	Layers []TaggedLayer
}

// TaggedLayer is one layer of a Tagged: content, media type, annotations.
type TaggedLayer struct {
	MediaType   string
	Content     []byte
	Annotations map[string]string
}

// Tag is the tag t goes under for the image ref.
func (t Tagged) Tag(ref name.Digest) name.Tag {
	return ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + t.Suffix)
}

// Attestations is the .att artifact for signed attestations, as cosign
// attest writes it: each DSSE envelope a layer, annotated with its
// predicate type. Unsigned attestations are left out.
func Attestations(atts []Attestation) (Tagged, error) {
	t := Tagged{Suffix: AttestationTagSuffix}
	for _, a := range atts {
		if a.Envelope == nil {
			continue
		}
		b, err := a.Envelope.Marshal()
		if err != nil {
			return Tagged{}, err
		}
		t.Layers = append(t.Layers, TaggedLayer{
			MediaType: DSSEMediaType,
			Content:   b,
			Annotations: map[string]string{
				SignatureAnnotation:     "",
				PredicateTypeAnnotation: a.PredicateType,
			},
		})
	}
	return t, nil
}

// Merge returns the image the tag should hold: base (nil: none yet) with
// t's layers appended, except those base already has (same content and
// annotations). changed is false when base already has every layer.
func (t Tagged) Merge(base v1.Image) (img v1.Image, changed bool, err error) {
	var have []v1.Descriptor
	if base == nil {
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	} else {
		m, err := base.Manifest()
		if err != nil {
			return nil, false, err
		}
		have = m.Layers
	}
	img = base
	for _, l := range t.Layers {
		layer := static.NewLayer(l.Content, types.MediaType(l.MediaType))
		d, err := layer.Digest()
		if err != nil {
			return nil, false, err
		}
		if hasLayer(have, d, l.Annotations) {
			continue
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, Annotations: l.Annotations}); err != nil {
			return nil, false, err
		}
		have = append(have, v1.Descriptor{Digest: d, Annotations: l.Annotations})
		changed = true
	}
	return img, changed, nil
}

func hasLayer(have []v1.Descriptor, d v1.Hash, annotations map[string]string) bool {
	for _, h := range have {
		if h.Digest == d && maps.Equal(h.Annotations, annotations) {
			return true
		}
	}
	return false
}

// WriteTagged merges t into the registry's tag for ref and returns the
// digest of what the tag names afterwards; nothing is written when the tag
// already has every layer.
func WriteTagged(ctx context.Context, ref name.Digest, t Tagged, opts ...remote.Option) (v1.Hash, error) {
	opts = withContext(ctx, opts)
	tag := t.Tag(ref)
	existing, err := remote.Image(tag, opts...)
	switch {
	case isNotFound(err):
		existing = nil
	case err != nil:
		return v1.Hash{}, fmt.Errorf("reading %s: %w", tag, err)
	}
	img, changed, err := t.Merge(existing)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("merging %s: %w", tag, err)
	}
	if changed {
		if err := remote.Write(tag, img, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("pushing %s: %w", tag, err)
		}
	}
	return img.Digest()
}
