package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/packaging/deb"
	"github.com/sailmaker/sailmaker/packaging/istio"
	"github.com/sailmaker/sailmaker/recipes"
)

// IstioctlVersionsType is the package type of the multi-version istioctl
// package (annotation dev.sailmaker.package.type, provenance package.type).
const IstioctlVersionsType = "istioctl-versions"

// IstioctlVersions makes, after the registry push, the multi-version
// istioctl package of every release's istioctl a build pushed (a binary
// artifact annotated with its collection, see builder.AnnotationCollection):
// it reads every istioctl the registry holds in that binary's repository
// (pushed and attested by sailmaker), keeps those retention selects, and
// makes the package with packaging/istio, its version above the one
// published before whenever its content changed. The new package goes
// through reg (pushed by digest, attested, signed with key when there is
// one, tagged with its version, recorded in the ledger) and then to the
// other outputs (an apt repository, an OCI layout). When the package would
// hold what the published one holds, nothing new is made: the published
// one is reported unchanged (and still given to the other outputs).
func IstioctlVersions(reg *Registry, key *attest.Key, retention istio.Retention, others ...Publisher) Publisher {
	return &istioctlVersions{reg: reg, key: key, retention: retention, others: others}
}

type istioctlVersions struct {
	reg       *Registry
	key       *attest.Key
	retention istio.Retention
	others    []Publisher
}

// composing serialises the making of one collection within this process
// (the service's workers): two builds must not both make "the next"
// version from the same previous one.
var composing sync.Map // collection repository -> *sync.Mutex

// bookkeepingTag matches the referrers fallback and cosign tags.
var bookkeepingTag = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$`)

func (c *istioctlVersions) Publish(ctx context.Context, res *builder.Result) ([]api.Image, error) {
	var out []api.Image
	done := map[string]bool{}
	for _, im := range res.Images {
		if im.Kind != builder.KindBinary {
			continue
		}
		m, err := im.Image.Manifest()
		if err != nil {
			return out, err
		}
		coll := m.Annotations[builder.AnnotationCollection]
		if coll == "" || done[coll] {
			continue
		}
		done[coll] = true
		mu, _ := composing.LoadOrStore(coll, &sync.Mutex{})
		mu.(*sync.Mutex).Lock()
		pub, err := c.compose(ctx, res, im, m.Annotations)
		mu.(*sync.Mutex).Unlock()
		out = append(out, pub...)
		if err != nil {
			return out, fmt.Errorf("making %s from the istioctl releases in %s: %w", m.Annotations[builder.AnnotationPackageName], im.Tag.Context(), err)
		}
	}
	return out, nil
}

// release is one istioctl found in the registry.
type release struct {
	ref name.Digest
	bin istio.Istioctl
}

func (c *istioctlVersions) compose(ctx context.Context, res *builder.Result, trigger builder.Image, ann map[string]string) ([]api.Image, error) {
	rc := c.reg.rc
	log := c.reg.log.WithField("package", ann[builder.AnnotationPackageName])
	work, err := os.MkdirTemp("", "sailmaker-istioctl-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	releases, err := c.releases(ctx, trigger.Tag.Context(), ann[builder.AnnotationCollection], work, log)
	if err != nil {
		return nil, err
	}
	// The repository of the package (a tag in it, to check the name).
	coll, err := rc.Tag(ann[builder.AnnotationCollection], "latest")
	if err != nil {
		return nil, err
	}
	pkgName := ann[builder.AnnotationPackageName]
	prev, prevImg, err := c.previous(ctx, coll.Context(), pkgName)
	if err != nil {
		return nil, err
	}
	set := istio.IstioctlSet{Name: pkgName, Retention: c.retention, Architecture: ann[builder.AnnotationPackageArch], Maintainer: ann[builder.AnnotationPackageMaintainer]}
	byVersion := map[string]release{}
	for _, r := range releases {
		set.Binaries = append(set.Binaries, r.bin)
		byVersion[r.bin.Version] = r
	}
	set.Previous = prev
	made, err := istio.IstioctlPackage(ctx, set)
	if err != nil {
		return nil, err
	}
	var holds []string
	for _, e := range made.Kept {
		holds = append(holds, e.Version)
	}
	log = log.WithFields(logrus.Fields{"version": made.Package.Version, "holds": strings.Join(holds, ",")})
	if len(made.Dropped) > 0 {
		log = log.WithField("dropped", strings.Join(made.Dropped, ","))
	}

	// The same releases give the same bytes, the same version and the same
	// artifact: the registry then finds it unchanged (and adds only
	// attestations it lacks, signed ones when the old are not).
	pkg, err := c.newPackage(ctx, res, ann, coll.Context(), made, byVersion)
	if err != nil {
		return nil, err
	}
	if prevImg != nil && prevImg.Digest == pkg.Digest {
		log.Info("the istioctl package published before holds the same releases: nothing new")
	} else {
		log.Info("a new version of the istioctl package")
	}
	out := &builder.Result{RecipeID: res.RecipeID, RecipeDigest: res.RecipeDigest, Commit: res.Commit, InputsKey: res.InputsKey,
		Trigger: res.Trigger, Images: []builder.Image{pkg}}
	var p Publisher = Multi(append([]Publisher{c.reg}, c.others...)...)
	if c.key != nil {
		p = Signed(p, c.key)
	}
	return p.Publish(ctx, out)
}

// releases reads every istioctl of the collection coll in repo: binary
// artifacts sailmaker pushed and attested, written to work.
func (c *istioctlVersions) releases(ctx context.Context, repo name.Repository, coll, work string, log logrus.FieldLogger) ([]release, error) {
	rc := c.reg.rc
	tags, err := remote.List(repo, rc.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", repo, err)
	}
	var out []release
	for _, tag := range tags {
		if bookkeepingTag.MatchString(tag) {
			continue
		}
		img, err := rc.Image(ctx, repo.Tag(tag))
		if isNotFound(err) {
			// Listed, but its manifest is not (or no longer) there:
			// another build is writing the tag (the registry lists a tag
			// before it links its manifest) or it was removed. That build
			// makes the package again once its tag is written, after
			// this one (composing is serialised per collection).
			log.WithField("artifact", repo.Tag(tag).String()).Info("left out of the istioctl package: the tag is being written or was removed")
			continue
		}
		if err != nil {
			return nil, err
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		skip := func(why string) {
			log.WithField("artifact", repo.Tag(tag).String()).Warn("left out of the istioctl package: " + why)
		}
		if m.ArtifactType != builder.ArtifactTypeBinary || m.Annotations[builder.AnnotationCollection] != coll {
			skip("not a release's istioctl pushed by sailmaker for " + coll)
			continue
		}
		ref := repo.Digest(d.String())
		have, err := rc.Attached(ctx, ref)
		if err != nil {
			return nil, err
		}
		if _, ok := have[attest.ProvenanceArtifactType]; !ok {
			skip("it has no provenance")
			continue
		}
		version := m.Annotations[builder.AnnotationPackageVersion]
		created, err := time.Parse(time.RFC3339, m.Annotations[builder.AnnotationCreated])
		if err != nil {
			skip("no creation time")
			continue
		}
		data, err := builder.ArtifactContent(img, builder.ArtifactTypeBinary)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", ref, err)
		}
		file := filepath.Join(work, "istioctl-"+recipes.PackageTag(version))
		if err := os.WriteFile(file, data, 0o755); err != nil {
			return nil, err
		}
		out = append(out, release{ref: ref, bin: istio.Istioctl{Version: version, Path: file, SHA256: m.Layers[0].Digest.Hex, Time: created}})
	}
	return out, nil
}

// previous finds the newest version of the package name in repo: what
// istio.IstioctlPackage needs to know of it, and its artifact.
func (c *istioctlVersions) previous(ctx context.Context, repo name.Repository, pkgName string) (*istio.Previous, *builder.Image, error) {
	rc := c.reg.rc
	tags, err := remote.List(repo, rc.Remote(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("listing %s: %w", repo, err)
	}
	var best *builder.Image
	bestVersion := ""
	for _, tag := range tags {
		if bookkeepingTag.MatchString(tag) {
			continue
		}
		t := repo.Tag(tag)
		img, err := rc.Image(ctx, t)
		if err != nil {
			return nil, nil, err
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, nil, err
		}
		v := m.Annotations[builder.AnnotationPackageVersion]
		if m.ArtifactType != builder.ArtifactTypeDeb || m.Annotations[builder.AnnotationPackageName] != pkgName || deb.CheckVersion(v) != nil {
			continue
		}
		if best != nil {
			if cmp, err := deb.CompareVersions(v, bestVersion); err != nil || cmp <= 0 {
				continue
			}
		}
		d, err := img.Digest()
		if err != nil {
			return nil, nil, err
		}
		best, bestVersion = &builder.Image{Name: pkgName, Kind: builder.KindPackage, Tag: t, Image: img, Digest: d}, v
	}
	if best == nil {
		return nil, nil, nil
	}
	data, err := builder.ArtifactContent(best.Image, builder.ArtifactTypeDeb)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", best.Tag, err)
	}
	prev, err := istio.PreviousFromDeb(data)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", best.Tag, err)
	}
	return prev, best, nil
}

// newPackage makes the artifact of a new version of the package, with its
// provenance (the build that made it, and each istioctl it holds by
// digest) and SBOM (the Go modules of every istioctl in it).
func (c *istioctlVersions) newPackage(ctx context.Context, res *builder.Result, ann map[string]string, repo name.Repository, made *istio.IstioctlResult, byVersion map[string]release) (builder.Image, error) {
	p := made.Package
	var holds []string
	var deps []attest.ResourceDescriptor
	var bins []attest.GoBinary
	for _, e := range made.Kept {
		r := byVersion[e.Version]
		holds = append(holds, e.Version)
		deps = append(deps, attest.ResourceDescriptor{Name: "istioctl " + e.Version, URI: r.ref.Context().Tag(recipes.PackageTag(e.Version)).String(),
			Digest: map[string]string{"sha256": strings.TrimPrefix(r.ref.DigestStr(), "sha256:")}})
		b, ok, err := attest.ReadGoBinary(r.bin.Path, e.Command)
		if err != nil {
			return builder.Image{}, err
		}
		if ok {
			b.MainVersion = e.Version
			bins = append(bins, b)
		}
	}
	// Only what the content decides: the same releases give the same
	// artifact whichever build makes it.
	a := map[string]string{
		builder.AnnotationTitle:             p.FileName(),
		builder.AnnotationVersion:           p.Version,
		builder.AnnotationCreated:           p.MTime.UTC().Format(time.RFC3339),
		builder.LabelBuiltBy:                "sailmaker",
		builder.AnnotationPackageName:       p.Name,
		builder.AnnotationPackageVersion:    p.Version,
		builder.AnnotationPackageArch:       p.Architecture,
		builder.AnnotationPackageType:       IstioctlVersionsType,
		builder.AnnotationPackageMaintainer: p.Maintainer,
		builder.AnnotationHolds:             strings.Join(holds, ","),
	}
	img, err := builder.NewArtifact(builder.ArtifactTypeDeb, "", made.Deb, p.FileName(), a)
	if err != nil {
		return builder.Image{}, err
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return builder.Image{}, err
	}
	tag := repo.Tag(recipes.PackageTag(p.Version))
	ref := repo.Digest(desc.Digest.String())
	now := time.Now()
	inv := res.Trigger.BuildID
	if inv == "" {
		inv = uuid.NewString()
	}
	var targets []string
	if t := ann[builder.LabelMakeTargets]; t != "" {
		targets = strings.Fields(t)
	}
	st, err := attest.NewProvenance(attest.ProvenanceParams{
		Image: ref,
		External: attest.ExternalParameters{
			Recipe:    attest.RecipeParam{ID: ann[builder.LabelRecipe], Digest: ann[builder.LabelRecipeDigest]},
			Source:    attest.SourceParam{Git: ann[builder.AnnotationSource], Tag: ann[builder.LabelTag], Commit: ann[builder.AnnotationRevision]},
			Make:      attest.MakeParam{Targets: targets},
			Toolchain: attest.ToolchainParam{Go: ann[builder.LabelGoVersion], Builder: ann[builder.LabelBuilder], BuilderDigest: ann[builder.LabelBuilderDigest]},
			Image:     attest.ImageParam{Name: p.Name, Repository: repo.RepositoryStr(), Tag: tag.TagStr()},
			Package:   &attest.PackageParam{Type: IstioctlVersionsType, Name: p.Name, Version: p.Version, Architecture: p.Architecture, File: p.FileName(), Holds: holds},
		},
		Internal:     attest.InternalParameters{SailmakerVersion: attest.SailmakerVersion(), Trigger: res.Trigger},
		InvocationID: inv,
		StartedOn:    now,
		FinishedOn:   now,
		Dependencies: deps,
	})
	if err != nil {
		return builder.Image{}, err
	}
	sbom, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: now, Binaries: bins, Arch: p.Architecture, Depends: p.Depends})
	if err != nil {
		return builder.Image{}, err
	}
	prov, err := attest.ProvenanceDocument(st, now)
	if err != nil {
		return builder.Image{}, err
	}
	sb, err := attest.SBOMDocument(st.Subject[0], sbom, now)
	if err != nil {
		return builder.Image{}, err
	}
	return builder.Image{Name: p.Name, Kind: builder.KindPackage, Tag: tag, Image: img, Digest: desc.Digest,
		Attestations: []attest.Attestation{{Document: prov}, {Document: sb}}}, nil
}
