package base

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// specIndex is an OCI image index whose manifest is written with the
// image-spec's own Go types, so its bytes are what other tools (skopeo and
// containers/image) write when they serialize it again: they can copy it
// and keep its digest (skopeo copy --all --preserve-digests).
type specIndex struct {
	inner v1.ImageIndex // the images, by digest
	raw   []byte
}

// NewIndex makes the OCI image index of one image per platform, in that
// order, as base images' indexes are written (see specIndex): the
// builder's multi-platform images use it too.
func NewIndex(images []PlatformResult) (v1.ImageIndex, error) { return newIndex(images) }

// newIndex makes the index of one image per platform, in that order.
func newIndex(images []PlatformResult) (v1.ImageIndex, error) {
	adds := make([]mutate.IndexAddendum, len(images))
	for i, pr := range images {
		plat := pr.Platform
		adds[i] = mutate.IndexAddendum{Add: pr.Image, Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &plat}}
	}
	inner := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	m, err := inner.IndexManifest()
	if err != nil {
		return nil, err
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, d := range m.Manifests {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{
			MediaType: string(d.MediaType),
			Digest:    digest.Digest(d.Digest.String()),
			Size:      d.Size,
			Platform:  &ocispec.Platform{Architecture: d.Platform.Architecture, OS: d.Platform.OS, Variant: d.Platform.Variant},
		})
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("writing the image index: %w", err)
	}
	return &specIndex{inner: inner, raw: raw}, nil
}

func (s *specIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
func (s *specIndex) RawManifest() ([]byte, error)        { return s.raw, nil }
func (s *specIndex) Size() (int64, error)                { return int64(len(s.raw)), nil }

func (s *specIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(s.raw))
	return h, err
}

func (s *specIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(s.raw))
}

func (s *specIndex) Image(h v1.Hash) (v1.Image, error)           { return s.inner.Image(h) }
func (s *specIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return s.inner.ImageIndex(h) }
