package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/partial"
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
		if err := p.ReplaceImage(im.Image, match.Annotation(AnnotationRefName, refName),
			layout.WithAnnotations(map[string]string{AnnotationRefName: refName, AnnotationImageName: im.Tag.String()})); err != nil {
			return done, fmt.Errorf("writing %s into the OCI layout %s: %w", refName, dir, err)
		}
		r, err := written(out, im)
		if err != nil {
			return done, err
		}
		desc, err := partial.Descriptor(im.Image)
		if err != nil {
			return done, err
		}
		for _, a := range im.Attestations {
			art, err := attest.AttachmentOf(*desc, a)
			if err != nil {
				return done, err
			}
			d, err := art.Digest()
			if err != nil {
				return done, err
			}
			if err := p.ReplaceImage(art, match.Digests(d)); err != nil {
				return done, fmt.Errorf("writing the %s of %s into the OCI layout %s: %w", a.Kind, refName, dir, err)
			}
			switch a.ArtifactType {
			case attest.ProvenanceArtifactType:
				r.Provenance = d.String()
			case attest.SBOMArtifactType:
				r.SBOM = d.String()
			}
		}
		byDigest := im.Tag.Context().Digest(im.Digest.String())
		att, err := attest.Attestations(im.Attestations)
		if err != nil {
			return done, err
		}
		for _, t := range []*attest.Tagged{im.Signature, &att} {
			if t == nil || len(t.Layers) == 0 {
				continue
			}
			img, _, err := t.Merge(nil)
			if err != nil {
				return done, err
			}
			tagName := refName[:len(refName)-len(im.Tag.TagStr())] + t.Tag(byDigest).TagStr()
			if err := p.ReplaceImage(img, match.Annotation(AnnotationRefName, tagName),
				layout.WithAnnotations(map[string]string{AnnotationRefName: tagName})); err != nil {
				return done, fmt.Errorf("writing %s into the OCI layout %s: %w", tagName, dir, err)
			}
			d, err := img.Digest()
			if err != nil {
				return done, err
			}
			if t.Suffix == attest.SignatureTagSuffix {
				r.Signature = d.String()
			} else {
				r.Attestations = d.String()
			}
		}
		done = append(done, r)
	}
	return done, nil
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
	size, err := registry.ImageSize(im.Image)
	if err != nil {
		return api.Image{}, err
	}
	mt, _ := im.Image.MediaType()
	r := api.Image{
		Name: im.Name, Output: out.String(), Repository: im.Tag.Context().String(), Tag: im.Tag.TagStr(),
		Reference: im.Tag.Context().Digest(im.Digest.String()).String(), Digest: im.Digest.String(),
		MediaType: string(mt), Platforms: platforms(im), Size: size, Status: api.StatusWritten,
	}
	describe(im, &r)
	return r, nil
}

// platforms are the os/arch of the image's manifests.
func platforms(im builder.Image) []string {
	cf, err := im.Image.ConfigFile()
	if err != nil || cf.OS == "" {
		return nil
	}
	p := cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		p += "/" + cf.Variant
	}
	return []string{p}
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
		if isImage(im) { // a docker archive holds images, not artifacts
			refs[im.Tag] = im.Image
			images = append(images, im)
		}
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
