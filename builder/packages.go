package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/packaging/deb"
	"github.com/sailmaker/sailmaker/packaging/istio"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// packagingFormatRevision is folded into the inputs key of a recipe with
// packages: bump it when what a package holds changes for the same inputs,
// so that the cache does not keep the old packages.
const packagingFormatRevision = "1"

// packaged is what the build knows about one package or binary it made,
// beyond the artifact.
type packaged struct {
	recipe  recipes.Package
	kind    string
	name    string // Debian package name, or the program's
	version string // Debian version, or the release
	arch    string
	file    string // the .deb's file name, or the program's
	depends []string
}

// builtPackage is one of the recipe's packages a build makes: its index
// in spec.packages, and the platform whose build its files come from.
type builtPackage struct {
	index    int
	recipe   recipes.Package
	platform platform
}

// builtPackages are the recipe's packages a build of platforms makes: each
// comes from the build of one platform (recipes.PackagePlatform), and one
// whose platform is not built (--platform) is left out.
func builtPackages(r *recipes.Recipe, platforms []platform) (out []builtPackage, left []string) {
	for i, p := range r.Spec.Packages {
		want := r.PackagePlatform(p)
		j := slices.IndexFunc(platforms, func(pl platform) bool { return pl.name == want })
		if j < 0 {
			left = append(left, p.Name+" ("+want+")")
			continue
		}
		out = append(out, builtPackage{index: i, recipe: p, platform: platforms[j]})
	}
	return out, left
}

// packageTargets are the artifacts the packages give, with their tags: an
// istio-cni package's .deb (tag: its Debian version, see
// recipes.PackageTag), an istioctl entry's binary (tag: the release).
func packageTargets(rc *registry.Client, r *recipes.Recipe, pkgs []builtPackage) ([]Target, error) {
	var out []Target
	for _, bp := range pkgs {
		i, p := bp.index, bp.recipe
		t := Target{Name: p.Name, Kind: KindPackage}
		tag := recipes.PackageTag(p.Version)
		if p.Type == recipes.PackageIstioctl {
			t.Name, t.Kind, tag = programName(p), KindBinary, recipes.PackageTag(r.BuildVersion())
		}
		nt, err := rc.Tag(p.Repository, tag)
		if err != nil {
			return nil, fmt.Errorf("spec.packages[%d]: %w", i, err)
		}
		t.Tag = nt
		out = append(out, t)
	}
	return out, nil
}

// programName is the name of an istioctl entry's binary: its file's.
func programName(p recipes.Package) string {
	if len(p.Files) == 0 {
		return "istioctl"
	}
	_, src := p.Files[0].Source()
	return path.Base(src)
}

// packagesKey folds the packaging format into the inputs key of a recipe
// with packages (a recipe without keeps its key, and its images their
// digests).
func packagesKey(r *recipes.Recipe, key string) string {
	if len(r.Spec.Packages) == 0 {
		return key
	}
	h := sha256.New()
	fmt.Fprintln(h, "inputs", key)
	fmt.Fprintln(h, "packaging", packagingFormatRevision)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// makePackages builds the packages from the exported compile result in
// outDir (each from its platform's directory), writing the .debs into
// work: each an artifact with its Go binaries (for the SBOM), in recipe
// order.
func (run *buildRun) makePackages(ctx context.Context, outDir, work string) ([]assembled, error) {
	r := run.recipe
	var out []assembled
	for _, bp := range run.pkgs {
		p := bp.recipe
		p.Files = r.PackageFiles(p)
		field := fmt.Sprintf("spec.packages[%d] (%s)", bp.index, p.Name)
		pout := filepath.Join(outDir, bp.platform.outDir())
		prov := run.provenance(bp.platform)
		var a assembled
		var err error
		switch p.Type {
		case recipes.PackageIstioCNI:
			a, err = run.cniPackage(ctx, p, pout, work, prov)
		case recipes.PackageIstioctl:
			a, err = run.istioctlBinary(p, pout, prov)
		default:
			err = fmt.Errorf("unknown package type %q", p.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		a.platform, a.prov = bp.platform, prov
		out = append(out, a)
	}
	return out, nil
}

// packageFile is where on this machine a package file comes from.
func packageFile(f recipes.File, outDir string) string {
	kind, rel := f.Source()
	return filepath.Join(outDir, kind, filepath.FromSlash(rel))
}

func (run *buildRun) source(prov Provenance) istio.Source {
	return istio.Source{URL: prov.SourceURL, Tag: prov.Tag, Commit: prov.Commit, Time: prov.Created}
}

// cniPackage makes the istio-cni package: packaging/istio's (control
// fields, README.Debian, the example CNI configuration, copyright,
// changelog, lintian overrides) with the recipe's files and version.
func (run *buildRun) cniPackage(ctx context.Context, p recipes.Package, outDir, work string, prov Provenance) (assembled, error) {
	r := run.recipe
	arch := r.PackageArchitecture(p)
	var plugin string
	var files []deb.File
	for _, f := range p.Files {
		src := packageFile(f, outDir)
		if f.To == istio.CNIPluginPath {
			plugin = src
		}
		files = append(files, deb.File{Dest: f.To, Source: src, Mode: fs.FileMode(f.FileMode())})
	}
	pkg, err := istio.CNIPackage(istio.CNI{Version: r.BuildVersion(), Architecture: arch, Plugin: plugin, Maintainer: p.Maintainer, Source: run.source(prov)})
	if err != nil {
		return assembled{}, err
	}
	pkg.Version = p.Version
	for _, f := range pkg.Files {
		if f.Data != nil { // the documentation packaging/istio writes
			files = append(files, f)
		}
	}
	pkg.Files = files
	if err := pkg.Validate(); err != nil {
		return assembled{}, err
	}
	file := filepath.Join(work, pkg.FileName())
	if err := deb.WriteFile(ctx, file, *pkg); err != nil {
		return assembled{}, err
	}
	meta := packaged{recipe: p, kind: KindPackage, name: pkg.Name, version: pkg.Version, arch: arch, file: pkg.FileName(), depends: pkg.Depends}
	img, err := NewArtifact(ArtifactTypeDeb, file, nil, meta.file, packageAnnotations(prov, meta))
	if err != nil {
		return assembled{}, err
	}
	var bins []attest.GoBinary
	for _, f := range p.Files {
		b, ok, err := attest.ReadGoBinary(packageFile(f, outDir), f.To)
		if err != nil {
			return assembled{}, err
		}
		if !ok {
			continue
		}
		if kind, _ := f.Source(); kind == recipes.FromBuild {
			b.MainVersion = prov.Version
		}
		bins = append(bins, b)
	}
	return assembled{image: img, binaries: bins, pkg: &meta}, nil
}

// istioctlBinary makes the artifact of this release's istioctl, by itself:
// the multi-version package is made from the registry's after the push
// (package publish).
func (run *buildRun) istioctlBinary(p recipes.Package, outDir string, prov Provenance) (assembled, error) {
	r := run.recipe
	src := packageFile(p.Files[0], outDir)
	dest := recipes.IstioctlPath(r.BuildVersion())
	b, ok, err := attest.ReadGoBinary(src, dest)
	if err != nil {
		return assembled{}, err
	}
	if !ok {
		return assembled{}, fmt.Errorf("%s is not a Go program with build info; is it the istioctl upstream's make built?", p.Files[0].From)
	}
	if path.Base(b.Info.Path) != "istioctl" {
		return assembled{}, fmt.Errorf("%s is the Go program %s, not istioctl", p.Files[0].From, b.Info.Path)
	}
	b.MainVersion = prov.Version
	meta := packaged{recipe: p, kind: KindBinary, name: programName(p), version: r.BuildVersion(), arch: r.PackageArchitecture(p), file: programName(p)}
	ann := packageAnnotations(prov, meta)
	ann[AnnotationPackageName] = p.Name
	ann[AnnotationCollection] = p.CollectionRepository()
	ann[AnnotationPackageMaintainer] = p.Maintainer
	img, err := NewArtifact(ArtifactTypeBinary, src, nil, meta.file, ann)
	if err != nil {
		return assembled{}, err
	}
	return assembled{image: img, binaries: []attest.GoBinary{b}, pkg: &meta}, nil
}

// packageAnnotations are what a package or binary artifact says about
// itself: the OCI annotations and the build's, as an image's labels do,
// without a base.
func packageAnnotations(p Provenance, m packaged) map[string]string {
	a := map[string]string{
		AnnotationSource:         p.SourceURL,
		AnnotationRevision:       p.Commit,
		AnnotationVersion:        m.version,
		AnnotationCreated:        p.Created.UTC().Format(time.RFC3339),
		AnnotationTitle:          m.file,
		LabelRecipe:              p.RecipeID,
		LabelRecipeDigest:        p.RecipeDigest,
		LabelTag:                 p.Tag,
		LabelBuilder:             p.Builder,
		LabelBuilderDigest:       p.BuilderDigest,
		LabelGoVersion:           p.GoVersion,
		LabelInputs:              p.InputsKey,
		LabelMakeTargets:         strings.Join(p.MakeTargets, " "),
		LabelBuiltBy:             builtByValue,
		AnnotationPackageName:    m.name,
		AnnotationPackageArch:    m.arch,
		AnnotationPackageType:    m.recipe.Type,
		AnnotationPackageVersion: m.version,
	}
	if m.recipe.Maintainer != "" {
		a[AnnotationPackageMaintainer] = m.recipe.Maintainer
	}
	return a
}

// packageDocuments makes the provenance and SBOM of a package or binary,
// unsigned: the build's provenance with the package instead of a base, and
// an SBOM of the Go modules linked into its programs and the package's
// Depends.
func (a *attestation) packageDocuments(t Target, out assembled, finished time.Time) ([]attest.Attestation, error) {
	desc, err := partial.Descriptor(out.image)
	if err != nil {
		return nil, err
	}
	ref := t.Tag.Context().Digest(desc.Digest.String())
	m := out.pkg
	ext := a.external(out.prov, t.Tag, t.Name)
	ext.Package = &attest.PackageParam{Type: m.recipe.Type, Name: m.name, Version: m.version, Architecture: m.arch, File: m.file}
	st, err := a.statement(out.prov, ref, ext, nil, finished)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", m.name, err)
	}
	sbom, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: finished, Binaries: out.binaries, Arch: m.arch, Depends: m.depends})
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", m.name, err)
	}
	return finishDocuments(st, sbom, finished)
}

// external is the provenance's external parameters of the build for the
// artifact tag (name is its name in the recipe): no base, no Envoy.
func (a *attestation) external(p Provenance, tag name.Tag, artifact string) attest.ExternalParameters {
	patches := []attest.PatchParam{}
	for _, pt := range a.recipe.Patches() {
		patches = append(patches, attest.PatchParam{Path: pt.Path, SHA256: pt.SHA256})
	}
	vars := map[string]string{}
	for k, val := range a.recipe.Spec.Make.Variables {
		vars[k] = val
	}
	if p.Arch != "" {
		vars[recipes.VarTargetArch] = p.Arch
	}
	return attest.ExternalParameters{
		Recipe:    attest.RecipeParam{ID: p.RecipeID, Digest: p.RecipeDigest},
		Source:    attest.SourceParam{Git: p.SourceURL, Tag: p.Tag, Commit: p.Commit},
		Patches:   patches,
		Make:      attest.MakeParam{Targets: p.MakeTargets, Variables: vars},
		Toolchain: attest.ToolchainParam{Go: p.GoVersion, Builder: p.Builder, BuilderDigest: p.BuilderDigest},
		Image:     attest.ImageParam{Name: artifact, Repository: tag.RepositoryStr(), Tag: tag.TagStr()},
	}
}

func (a *attestation) statement(p Provenance, ref name.Digest, ext attest.ExternalParameters, deps []attest.ResourceDescriptor, finished time.Time) (*attest.Statement, error) {
	return attest.NewProvenance(attest.ProvenanceParams{
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
		Dependencies: deps,
	})
}

// finishDocuments turns a provenance statement and an SBOM into the two
// attestations.
func finishDocuments(st *attest.Statement, sbom *attest.SPDXDocument, finished time.Time) ([]attest.Attestation, error) {
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

// exportedFiles are the files the compile step for arch copies out:
// everything the images (for arch) and the packages made from arch's
// build take from the build or the source.
func exportedFiles(r *recipes.Recipe, arch string) []recipes.File {
	var out []recipes.File
	for _, img := range r.Spec.Images {
		for _, f := range img.Files {
			out = append(out, f.For(arch))
		}
	}
	for _, p := range r.Spec.Packages {
		if recipes.ArchOf(r.PackagePlatform(p)) == arch {
			out = append(out, r.PackageFiles(p)...)
		}
	}
	return out
}
