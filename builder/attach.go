package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// requiredAttachments are the artifact types every image sailmaker pushes
// has; an image without them is not up to date.
var requiredAttachments = []string{attest.ProvenanceArtifactType, attest.SBOMArtifactType}

// attestation is what one build records about its images, beyond the
// labels: the trigger, BuildKit, the patches and when it ran.
type attestation struct {
	recipe       *recipes.Recipe
	prov         Provenance
	trigger      Trigger
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

// attachments makes the provenance and SBOM of one image, to be pushed
// with it.
func (a *attestation) attachments(img recipes.Image, tag name.Tag, bi BaseImage, out assembled, finished time.Time) ([]registry.Attachment, error) {
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
			Trigger: attest.Trigger{
				Actor: a.trigger.Actor, Kind: a.trigger.Kind, DeliveryID: a.trigger.DeliveryID,
				BuildID: a.trigger.BuildID, Time: a.trigger.Time.UTC(),
			},
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

	var atts []registry.Attachment
	for _, d := range []struct {
		artifactType, kind string
		doc                any
	}{
		{attest.ProvenanceArtifactType, attest.KindProvenance, st},
		{attest.SBOMArtifactType, attest.KindSBOM, sbom},
	} {
		raw, err := json.Marshal(d.doc)
		if err != nil {
			return nil, err
		}
		att, err := attest.Attachment(*desc, d.artifactType, d.kind, raw, finished)
		if err != nil {
			return nil, err
		}
		atts = append(atts, registry.Attachment{ArtifactType: d.artifactType, Image: att})
	}
	return atts, nil
}

// signer signs with key through rc, for registry.Pending.Sign.
func signer(rc *registry.Client, key *attest.Key) func(context.Context, name.Digest) (v1.Hash, error) {
	if key == nil {
		return nil
	}
	return func(ctx context.Context, ref name.Digest) (v1.Hash, error) {
		return attest.Sign(ctx, ref, key, rc.Remote(ctx)...)
	}
}

// withAttachments copies the digests of what is attached to an image into
// the result's fields.
func withAttachments(r ImageResult) ImageResult {
	if d, ok := r.Attached[attest.ProvenanceArtifactType]; ok {
		r.Provenance = d.String()
	}
	if d, ok := r.Attached[attest.SBOMArtifactType]; ok {
		r.SBOM = d.String()
	}
	if r.SignatureDigest != nil {
		r.Signature = r.SignatureDigest.String()
	}
	return r
}
