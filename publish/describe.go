package publish

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder"
)

// isImage is true for a container image (not a package or binary
// artifact).
func isImage(im builder.Image) bool { return im.Kind == "" || im.Kind == builder.KindImage }

// describe sets what a result says about a package or binary: its kind,
// and the package's name, version, architecture and file from the
// artifact's annotations.
func describe(im builder.Image, r *api.Image) {
	if isImage(im) {
		return
	}
	r.Kind = im.Kind
	m, err := im.Image.Manifest()
	if err != nil {
		return
	}
	a := m.Annotations
	r.Package = &api.Package{
		Name: a[builder.AnnotationPackageName], Version: a[builder.AnnotationPackageVersion],
		Architecture: a[builder.AnnotationPackageArch], File: a[builder.AnnotationTitle],
	}
	if im.Kind == builder.KindBinary {
		// The binary's own name; the annotation names the package made of it.
		r.Package.Name = im.Name
	}
	if h := a[builder.AnnotationHolds]; h != "" {
		r.Package.Holds = strings.Split(h, ",")
	}
}

// inputsOf is the inputs key an image (its config label) or an artifact
// (its manifest annotation) was built from.
func inputsOf(img v1.Image, cf *v1.ConfigFile) string {
	if v := cf.Config.Labels[builder.LabelInputs]; v != "" {
		return v
	}
	if m, err := img.Manifest(); err == nil {
		return m.Annotations[builder.LabelInputs]
	}
	return ""
}
