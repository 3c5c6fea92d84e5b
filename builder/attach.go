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
	prov         Provenance
	trigger      api.Trigger
	buildKit     string
	invocationID string
	started      time.Time
	log          logrus.FieldLogger
	worker       string
}

// assembled is one image of a build with the Go binaries placed in it.
type assembled struct {
	image    v1.Image
	binaries []attest.GoBinary
	// pkg is set for a package or binary (packages.go).
	pkg *packaged
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

// documents makes the provenance and SBOM of one image, unsigned.
func (a *attestation) documents(img recipes.Image, tag name.Tag, bi BaseImage, out assembled, finished time.Time) ([]attest.Attestation, error) {
	desc, err := partial.Descriptor(out.image)
	if err != nil {
		return nil, err
	}
	ref := tag.Context().Digest(desc.Digest.String())
	p := a.prov
	patches := []attest.PatchParam{}
	for _, pt := range a.recipe.Patches() {
		patches = append(patches, attest.PatchParam{Path: pt.Path, SHA256: pt.SHA256})
	}
	ext := attest.ExternalParameters{
		Recipe:    attest.RecipeParam{ID: p.RecipeID, Digest: p.RecipeDigest},
		Source:    attest.SourceParam{Git: p.SourceURL, Tag: p.Tag, Commit: p.Commit},
		Patches:   patches,
		Make:      attest.MakeParam{Targets: p.MakeTargets, Variables: a.recipe.Spec.Make.Variables},
		Toolchain: attest.ToolchainParam{Go: p.GoVersion, Builder: p.Builder, BuilderDigest: p.BuilderDigest},
		Base:      attest.BaseParam{Name: bi.Ref, Digest: bi.Digest.String()},
		Image:     attest.ImageParam{Name: img.Name, Repository: tag.RepositoryStr(), Tag: tag.TagStr()},
	}
	if p.EnvoySHA256 != "" {
		ext.Envoy = &attest.EnvoyParam{URL: p.EnvoyURL, SHA256: p.EnvoySHA256, ProxySHA: p.ProxySHA, Override: p.EnvoyOverride}
	}
	st, err := attest.NewProvenance(attest.ProvenanceParams{
		Image:    ref,
		External: ext,
		Internal: attest.InternalParameters{
			BuildKitVersion:  a.buildKit,
			SailmakerVersion: attest.SailmakerVersion(),
			InputsKey:        p.InputsKey,
			Trigger:          a.trigger,
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
	sbom, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: finished, Binaries: out.binaries, Debian: debs, Arch: cf.Architecture})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}

	prov, err := attest.ProvenanceDocument(st, finished)
	if err != nil {
		return nil, err
	}
	sb, err := attest.SBOMDocument(st.Subject[0], sbom, finished)
	if err != nil {
		return nil, err
	}
	return []attest.Attestation{{Document: prov}, {Document: sb}}, nil
}
