package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/registry"
)

// Annotations an OCI layout's index puts on the images it holds.
const (
	// AnnotationRefName is the image's name in the layout
	// (<repository>:<tag>, without the registry), what `skopeo ...
	// oci:DIR:NAME` selects.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationImageName is the full reference, what containerd imports
	// the image as.
	AnnotationImageName = "io.containerd.image.name"
)

// Layout writes images into an OCI image layout directory (made if it
// does not exist; an existing layout keeps its other images). Each image
// is named <repository>:<tag>; an image of the same name is replaced. The
// attestations go in too, as manifests whose subject is the image, and a
// signature under <repository>:sha256-<hex>.sig as in a registry.
func Layout(dir string) Publisher { return layoutPublisher(dir) }

type layoutPublisher string

func (dir layoutPublisher) Publish(ctx context.Context, res *builder.Result) ([]api.Image, error) {
	out := Output{Kind: OutputOCILayout, Path: string(dir)}
	p, err := openLayout(string(dir))
	if err != nil {
		return nil, err
	}
	var done []api.Image
	for _, im := range res.Images {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		refName := refName(im.Tag)
		ann := layout.WithAnnotations(map[string]string{AnnotationRefName: refName, AnnotationImageName: im.Tag.String()})
		if im.Index != nil {
			err = p.ReplaceIndex(im.Index, match.Annotation(AnnotationRefName, refName), ann)
		} else {
			err = p.ReplaceImage(im.Image, match.Annotation(AnnotationRefName, refName), ann)
		}
		if err != nil {
			return done, fmt.Errorf("writing %s into the OCI layout %s: %w", refName, dir, err)
		}
		r, err := written(out, im)
		if err != nil {
			return done, err
		}
		for i, m := range im.Manifests {
			a, err := dir.writeAttached(p, m, m.Attestations, refName)
			if err != nil {
				return done, err
			}
			r.Manifests[i].Provenance, r.Manifests[i].SBOM, r.Manifests[i].Signature, r.Manifests[i].Attestations = a.provenance, a.sbom, a.signature, a.attestations
		}
		all := im.Attestations
		for _, m := range im.Manifests {
			all = append(all, m.Attestations...)
		}
		a, err := dir.writeAttached(p, im, all, refName)
		if err != nil {
			return done, err
		}
		r.Provenance, r.SBOM, r.Signature, r.Attestations = a.provenance, a.sbom, a.signature, a.attestations
		done = append(done, r)
	}
	return done, nil
}

// attachedDigests are the digests of what writeAttached wrote.
type attachedDigests struct{ provenance, sbom, signature, attestations string }

// writeAttached writes im's own attestations as manifests whose subject is
// im (an index has none of its own), and its signature and the signed
// ones of atts under <repository>:sha256-<hex>.sig and .att, as in a
// registry.
func (dir layoutPublisher) writeAttached(p layout.Path, im builder.Image, atts []attest.Attestation, refName string) (attachedDigests, error) {
	var out attachedDigests
	if len(im.Attestations) > 0 {
		desc, err := partial.Descriptor(im.Image)
		if err != nil {
			return out, err
		}
		for _, a := range im.Attestations {
			art, err := attest.AttachmentOf(*desc, a)
			if err != nil {
				return out, err
			}
			d, err := art.Digest()
			if err != nil {
				return out, err
			}
			if err := p.ReplaceImage(art, match.Digests(d)); err != nil {
				return out, fmt.Errorf("writing the %s of %s into the OCI layout %s: %w", a.Kind, refName, dir, err)
			}
			switch a.ArtifactType {
			case attest.ProvenanceArtifactType:
				out.provenance = d.String()
			case attest.SBOMArtifactType:
				out.sbom = d.String()
			}
		}
	}
	byDigest := im.Tag.Context().Digest(im.Digest.String())
	att, err := attest.Attestations(atts)
	if err != nil {
		return out, err
	}
	for _, t := range []*attest.Tagged{im.Signature, &att} {
		if t == nil || len(t.Layers) == 0 {
			continue
		}
		img, _, err := t.Merge(nil)
		if err != nil {
			return out, err
		}
		tagName := refName[:len(refName)-len(im.Tag.TagStr())] + t.Tag(byDigest).TagStr()
		if err := p.ReplaceImage(img, match.Annotation(AnnotationRefName, tagName),
			layout.WithAnnotations(map[string]string{AnnotationRefName: tagName})); err != nil {
			return out, fmt.Errorf("writing %s into the OCI layout %s: %w", tagName, dir, err)
		}
		d, err := img.Digest()
		if err != nil {
			return out, err
		}
		if t.Suffix == attest.SignatureTagSuffix {
			out.signature = d.String()
		} else {
			out.attestations = d.String()
		}
	}
	return out, nil
}

// openLayout opens the OCI layout at dir, or makes an empty one.
func openLayout(dir string) (layout.Path, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		p, err := layout.FromPath(dir)
		if err != nil {
			return "", fmt.Errorf("%s is not an OCI image layout: %w", dir, err)
		}
		return p, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return "", fmt.Errorf("%s exists and is not an OCI image layout (no index.json): name an empty or new directory", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("making the OCI layout %s: %w", dir, err)
	}
	return p, nil
}

// refName is the image's name in a layout: repository path and tag.
func refName(t name.Tag) string { return t.RepositoryStr() + ":" + t.TagStr() }

// written is the result of an image written to a file output.
func written(out Output, im builder.Image) (api.Image, error) {
	return resultOf(out, im, api.StatusWritten)
}

// resultOf is what an output reports about im before anything is
// written: digests, media type, platforms and size (of an index: its
// manifest and its images').
func resultOf(out Output, im builder.Image, status string) (api.Image, error) {
	r := api.Image{
		Name: im.Name, Output: out.String(), Repository: im.Tag.Context().String(), Tag: im.Tag.TagStr(),
		Reference: im.Tag.Context().Digest(im.Digest.String()).String(), Digest: im.Digest.String(),
		Platforms: im.Platforms(), Status: status,
	}
	if im.Index == nil {
		size, err := registry.ImageSize(im.Image)
		if err != nil {
			return api.Image{}, err
		}
		mt, _ := im.Image.MediaType()
		r.MediaType, r.Size = string(mt), size
		describe(im, &r)
		return r, nil
	}
	mt, _ := im.Index.MediaType()
	raw, err := im.Index.RawManifest()
	if err != nil {
		return api.Image{}, err
	}
	r.MediaType, r.Size = string(mt), int64(len(raw))
	for _, m := range im.Manifests {
		size, err := registry.ImageSize(m.Image)
		if err != nil {
			return api.Image{}, err
		}
		r.Size += size
		r.Manifests = append(r.Manifests, api.Manifest{Platform: m.Platform, Digest: m.Digest.String(),
			Reference: im.Tag.Context().Digest(m.Digest.String()).String(), Size: size})
	}
	return r, nil
}

// taggable is what the tag names: the index or the image.
func taggable(im builder.Image) remote.Taggable {
	if im.Index != nil {
		return im.Index
	}
	return im.Image
}

// Tarball writes the images into one docker-archive tarball (what `docker
// load`, `skopeo copy docker-archive:FILE` and kind/k3s image import read),
// each under its tag. The file is replaced. A docker archive holds images
// only: attestations, signatures, packages and binaries are not in it.
func Tarball(file string) Publisher { return tarballPublisher(file) }

type tarballPublisher string

func (file tarballPublisher) Publish(ctx context.Context, res *builder.Result) ([]api.Image, error) {
	out := Output{Kind: OutputTar, Path: string(file)}
	refs := map[name.Reference]v1.Image{}
	var images []builder.Image
	for _, im := range res.Images {
		if !isImage(im) {
			continue // a docker archive holds images, not artifacts
		}
		if im.Index != nil {
			// A docker archive holds one image per tag: the one platform
			// of a one-platform index, never a choice made here.
			if len(im.Manifests) != 1 {
				return nil, fmt.Errorf("%w: %s is an image index of %s, and a docker archive (tar=%s) holds one image per tag: build one platform (--platform) for a tar output, or use oci-layout=DIR",
					ErrTarIndex, im.Tag, strings.Join(im.Platforms(), ", "), file)
			}
			im = im.Manifests[0]
		}
		refs[im.Tag] = im.Image
		images = append(images, im)
	}
	if len(images) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(string(file)), 0o755); err != nil {
		return nil, err
	}
	tmp := string(file) + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("writing the tarball %s: %w", file, err)
	}
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, string(file)); err != nil {
		return nil, err
	}
	var done []api.Image
	for _, im := range images {
		r, err := written(out, im)
		if err != nil {
			return done, err
		}
		done = append(done, r)
	}
	return done, nil
}

// ErrTarIndex is wrapped when a docker-archive output is asked to hold an
// image index of several platforms.
var ErrTarIndex = errors.New("a docker archive cannot hold a multi-platform image")

// CheckOutputs refuses, before anything is built, outputs that cannot
// hold what a build of n platforms of a recipe makes: a tar output takes
// one platform.
func CheckOutputs(outs []Output, multiPlatform bool, n int) error {
	for _, o := range outs {
		if o.Kind == OutputTar && multiPlatform && n > 1 {
			return fmt.Errorf("--output %s: the recipe builds %d platforms into image indexes, and a docker archive holds one image per tag: add --platform with one of them, or use oci-layout=DIR", o, n)
		}
	}
	return nil
}
