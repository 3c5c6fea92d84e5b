package base

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sailmaker/sailmaker/registry"
)

// Push pushes a built base under tag: an image through the registry
// client's PushAll; an index by digest (its images first), then the tag,
// with the same rule: a tag naming another digest is refused unless force.
func Push(ctx context.Context, rc *registry.Client, tag name.Tag, a Artifact, force bool) (*registry.Pushed, error) {
	if a.Index == nil {
		p, err := rc.PushAll(ctx, []registry.Pending{{Tag: tag, Image: a.Image}}, force)
		if err != nil {
			return nil, err
		}
		return &p[0], nil
	}
	d, err := a.Index.Digest()
	if err != nil {
		return nil, fmt.Errorf("digest of %s: %w", tag, err)
	}
	size, err := IndexSize(a)
	if err != nil {
		return nil, err
	}
	out := &registry.Pushed{Tag: tag, Digest: d, Size: size}
	cur, ok, err := rc.Resolve(ctx, tag)
	if err != nil {
		return nil, err
	}
	if ok {
		if cur == d {
			out.Unchanged = true
			return out, nil
		}
		prev := cur
		out.Previous = &prev
		if !force {
			return nil, &registry.TagMovedError{Tag: tag, Current: cur, New: d}
		}
		out.Forced = true
	}
	byDigest := tag.Context().Digest(d.String())
	if err := remote.WriteIndex(byDigest, a.Index, rc.Remote(ctx)...); err != nil {
		return nil, fmt.Errorf("pushing %s: %w", byDigest, err)
	}
	if err := remote.Tag(tag, a.Index, rc.Remote(ctx)...); err != nil {
		return nil, fmt.Errorf("tagging %s: %w", tag, err)
	}
	return out, nil
}

// IndexSize is the bytes of a multi-platform base: the index manifest and
// each image's manifest, config and layers.
func IndexSize(a Artifact) (int64, error) {
	if a.Index == nil {
		return registry.ImageSize(a.Image)
	}
	raw, err := a.Index.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw))
	m, err := a.Index.IndexManifest()
	if err != nil {
		return 0, err
	}
	for _, d := range m.Manifests {
		img, err := a.Index.Image(d.Digest)
		if err != nil {
			return 0, err
		}
		s, err := registry.ImageSize(img)
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}
