package builder

import (
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
)

// attestation is what one build records about its images, beyond the
// labels: the trigger, BuildKit, the patches and when it ran.
type attestation struct {
	recipe       *recipes.Recipe
	trigger      api.Trigger
	buildKit     string
	invocationID string
	started      time.Time
	log          logrus.FieldLogger
	worker       string
}

// assembled is the image of one platform of a build (or a package or
// binary artifact), with the Go binaries placed in it and where its parts
// are on this machine.
type assembled struct {
	image    v1.Image
	binaries []attest.GoBinary
	platform platform
	base     BaseImage
	prov     Provenance
	// pkg is set for a package or binary (packages.go); it has no base,
	// layer or spec.
	pkg *packaged
	// layer is the file of the layer sailmaker added; spec the recipe's
	// image with ${TARGET_ARCH} expanded; outDir and envoyDir where its
	// files came from.
	layer    string
	spec     recipes.Image
	outDir   string
	envoyDir string
}

// assembledImage is one image of the recipe: one assembled image per
// platform, and their index when the recipe has several platforms.
type assembledImage struct {
	index     v1.ImageIndex
	platforms []assembled
}

// digest is what the tag will name: the index's, or the one image's.
func (a assembledImage) digest() (v1.Hash, error) {
	if a.index != nil {
		return a.index.Digest()
	}
	return a.platforms[0].image.Digest()
}

// newIndex is the OCI image index of the platforms' images, in the
// recipe's order of platforms, written as builder/base writes a base's.
func newIndex(images []assembled) (v1.ImageIndex, error) {
	var prs []base.PlatformResult
	for _, a := range images {
		cf, err := a.image.ConfigFile()
		if err != nil {
			return nil, err
		}
		p := cf.Platform()
		if p == nil {
			return nil, fmt.Errorf("the %s image has no platform", a.platform.name)
		}
		prs = append(prs, base.PlatformResult{Platform: *p, Image: a.image})
	}
	return base.NewIndex(prs)
}

// platformString is os/arch[/variant] of img, as its config says, or the
// platform's name.
func (p platform) platformString(img v1.Image) string {
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
		return platformOf(cf)
	}
	return p.name
}

// goBinaries reads the Go build info of the files placed in img; files
// that are not Go executables (Envoy, configuration) are skipped. The main
// module of binaries from the build gets the recipe's version.
func goBinaries(img recipes.Image, outDir, envoyDir, version string) ([]attest.GoBinary, error) {
	var out []attest.GoBinary
	for _, f := range img.Files {
		kind, _ := f.Source()
		if kind == recipes.FromSource {
			continue
		}
		src, err := fileSource(img, f, outDir, envoyDir)
		if err != nil {
			return nil, err
		}
		b, ok, err := attest.ReadGoBinary(src, f.To)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		if !ok {
			continue
		}
		if kind == recipes.FromBuild {
			b.MainVersion = version
		}
		out = append(out, b)
	}
	return out, nil
}

// documents makes the provenance and SBOM of the image of one platform,
// unsigned; v is what validating it found. index, if set, is the image
// index the image is part of: the statements name it too.
func (a *attestation) documents(img recipes.Image, tag name.Tag, out assembled, v *attest.Validation, index *v1.Hash, finished time.Time) ([]attest.Attestation, error) {
	desc, err := partial.Descriptor(out.image)
	if err != nil {
		return nil, err
	}
	ref := tag.Context().Digest(desc.Digest.String())
	p, bi := out.prov, out.base
	patches := []attest.PatchParam{}
	for _, pt := range a.recipe.Patches() {
		patches = append(patches, attest.PatchParam{Path: pt.Path, SHA256: pt.SHA256})
	}
	vars := map[string]string{}
	for k, val := range a.recipe.Spec.Make.Variables {
		vars[k] = val
	}
	vars[recipes.VarTargetArch] = p.Arch
	ext := attest.ExternalParameters{
		Recipe:    attest.RecipeParam{ID: p.RecipeID, Digest: p.RecipeDigest},
		Source:    attest.SourceParam{Git: p.SourceURL, Tag: p.Tag, Commit: p.Commit},
		Patches:   patches,
		Make:      attest.MakeParam{Targets: p.MakeTargets, Variables: vars},
		Toolchain: attest.ToolchainParam{Go: p.GoVersion, Builder: p.Builder, BuilderDigest: p.BuilderDigest},
		Base:      attest.BaseParam{Name: bi.Ref, Digest: bi.Digest.String()},
		Image:     attest.ImageParam{Name: img.Name, Repository: tag.RepositoryStr(), Tag: tag.TagStr(), Platform: out.platform.platformString(out.image), Index: a.recipe.Spec.MultiPlatform()},
	}
	if p.EnvoySHA256 != "" {
		ext.Envoy = &attest.EnvoyParam{URL: p.EnvoyURL, SHA256: p.EnvoySHA256, ProxySHA: p.ProxySHA, Override: p.EnvoyOverride}
	}
	var indexRef *name.Digest
	if index != nil {
		d := tag.Context().Digest(index.String())
		indexRef = &d
	}
	st, err := attest.NewProvenance(attest.ProvenanceParams{
		Image:    ref,
		Index:    indexRef,
		External: ext,
		Internal: attest.InternalParameters{
			BuildKitVersion:  a.buildKit,
			SailmakerVersion: attest.SailmakerVersion(),
			InputsKey:        p.InputsKey,
			Trigger:          a.trigger,
			Validation:       v,
		},
		InvocationID: a.invocationID,
		Worker:       a.worker,
		StartedOn:    a.started,
		FinishedOn:   finished,
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}

	cf, err := bi.Image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the base image %s: %w", bi.Ref, err)
	}
	label, ok := cf.Config.Labels[base.LabelPackages]
	if !ok {
		a.log.WithField("base", bi.Ref).Warnf("the base image has no %s label: the SBOM lists no Debian packages", base.LabelPackages)
	}
	debs, err := attest.ParseDebianPackages(label)
	if err != nil {
		return nil, fmt.Errorf("the base image %s: label %s: %w", bi.Ref, base.LabelPackages, err)
	}
	arch := cf.Architecture
	if arch == "" {
		arch = p.Arch
	}
	sbom, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: finished, Binaries: out.binaries, Debian: debs, Arch: arch})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}

	prov, err := attest.ProvenanceDocument(st, finished)
	if err != nil {
		return nil, err
	}
	sb, err := attest.SBOMDocumentFor(st.Subject, sbom, finished)
	if err != nil {
		return nil, err
	}
	return []attest.Attestation{{Document: prov}, {Document: sb}}, nil
}
