package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/internal/version"
)

// Identifiers in the provenance statement.
const (
	StatementType       = "https://in-toto.io/Statement/v1"
	SLSAProvenanceV1    = "https://slsa.dev/provenance/v1"
	BuildType           = "https://sailmaker.dev/build/v1"
	BuilderID           = "https://sailmaker.dev/sailmaker"
	resolvedNameSource  = "source"
	resolvedNameBuilder = "builder"
	resolvedNameBase    = "base"
	resolvedNameEnvoy   = "envoy"
	resolvedNamePatch   = "patch"
)

// Statement is an in-toto Statement v1 whose predicate is SLSA provenance v1.
type Statement struct {
	Type          string     `json:"_type"`
	Subject       []Subject  `json:"subject"`
	PredicateType string     `json:"predicateType"`
	Predicate     Provenance `json:"predicate"`
}

// Subject is what a statement is about: the image, by manifest digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Provenance is the SLSA v1 provenance predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is what the build did, from what.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   InternalParameters   `json:"internalParameters"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
}

// ExternalParameters are the recipe's pins and what was built from them.
type ExternalParameters struct {
	Recipe    RecipeParam    `json:"recipe"`
	Source    SourceParam    `json:"source"`
	Patches   []PatchParam   `json:"patches"`
	Make      MakeParam      `json:"make"`
	Envoy     *EnvoyParam    `json:"envoy,omitempty"`
	Toolchain ToolchainParam `json:"toolchain"`
	Base      BaseParam      `json:"base"`
	Image     ImageParam     `json:"image"`
	// Package is set when the statement is about a Debian package or a
	// binary the build made (no base image then).
	Package *PackageParam `json:"package,omitempty"`
}

// PackageParam is the Debian package (or binary) a statement is about.
type PackageParam struct {
	// Type is the recipe's package type (istio-cni, istioctl) or
	// istioctl-versions for the multi-version package.
	Type string `json:"type"`
	// Name, Version and Architecture are the Debian package's control
	// fields (for a binary: its program name and release).
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture,omitempty"`
	// File is the .deb's file name (or the binary's name).
	File string `json:"file,omitempty"`
	// Holds are the releases a multi-version package holds.
	Holds []string `json:"holds,omitempty"`
}

// RecipeParam names the recipe: id (name@version) and digest (sha256:...).
type RecipeParam struct {
	ID     string `json:"id"`
	Digest string `json:"digest"`
}

// SourceParam is the upstream source: git URL, tag and the commit it names.
type SourceParam struct {
	Git    string `json:"git"`
	Tag    string `json:"tag"`
	Commit string `json:"commit"`
}

// PatchParam is one patch of the recipe, applied in order.
type PatchParam struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// MakeParam is how upstream's make was run.
type MakeParam struct {
	Targets   []string          `json:"targets"`
	Variables map[string]string `json:"variables"`
}

// EnvoyParam is the Envoy artifact: URL, its sha256, istio.deps'
// PROXY_REPO_SHA, and whether the sha256 was given on the command line
// instead of the recipe's pin.
type EnvoyParam struct {
	URL      string `json:"url"`
	SHA256   string `json:"sha256"`
	ProxySHA string `json:"proxySha"`
	Override bool   `json:"override"`
}

// ToolchainParam is the builder image (as the recipe names it, and its
// digest sha256:...) and its Go version.
type ToolchainParam struct {
	Go            string `json:"go"`
	Builder       string `json:"builder"`
	BuilderDigest string `json:"builderDigest"`
}

// BaseParam is the base image: as the recipe names it, and its digest.
type BaseParam struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// ImageParam is the image of the recipe this statement is about. For one
// image of a multi-platform tag (an image index), Platform is its os/arch
// and Index says the tag names an index.
type ImageParam struct {
	Name       string `json:"name"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Platform   string `json:"platform,omitempty"`
	Index      bool   `json:"index,omitempty"`
}

// InternalParameters are the builder's own settings and the trigger.
type InternalParameters struct {
	BuildKitVersion  string `json:"buildkitVersion"`
	SailmakerVersion string `json:"sailmakerVersion"`
	InputsKey        string `json:"inputsKey"`
	// Trigger is who or what asked for the build, and when.
	Trigger api.Trigger `json:"trigger"`
	// Validation is what running the image's programs found before any
	// tag moved.
	Validation *Validation `json:"validation,omitempty"`
}

// Validation is what sailmaker found when it ran an image's programs in
// BuildKit, in the built image with no network, before any tag moved (as
// istio's release-builder validates a release): what each Go binary
// reports as its version and revision, and that Envoy is the verified
// input.
type Validation struct {
	Passed   bool   `json:"passed"`
	Platform string `json:"platform"`
	// Emulated: the programs ran under qemu (binfmt_misc), the platform
	// not being the build host's.
	Emulated bool            `json:"emulated,omitempty"`
	Expected ExpectedVersion `json:"expected"`
	Binaries []BinaryCheck   `json:"binaries"`
	Envoy    *EnvoyCheck     `json:"envoy,omitempty"`
}

// ExpectedVersion is what the binaries must report: the recipe's version
// and the pinned commit. Patched: the recipe applies patches, so the tree
// the binaries were built from is modified, and upstream's build stamps
// the revision "-dirty" and the status "Modified".
type ExpectedVersion struct {
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Status   string `json:"status"`
	Patched  bool   `json:"patched"`
	Patches  int    `json:"patches,omitempty"`
}

// BinaryCheck is one Go binary run as `<path> version -o json`: its ELF
// machine and what it reported.
type BinaryCheck struct {
	Path          string   `json:"path"`
	Command       []string `json:"command"`
	Machine       string   `json:"machine"`
	Version       string   `json:"version"`
	Revision      string   `json:"revision"`
	GolangVersion string   `json:"golangVersion,omitempty"`
	Status        string   `json:"status"`
	Tag           string   `json:"tag,omitempty"`
	// Reused: the program was not run again; what it printed is from an
	// earlier build's run of the same bytes on the same base, with the
	// same user, environment, arguments and files.
	Reused bool `json:"reused,omitempty"`
}

// EnvoyCheck is the Envoy binary in the image: its sha256 read from the
// image's layer, the sha256 of the binary in the verified tarball, and
// what `envoy --version` printed (it names the PROXY_REPO_SHA).
type EnvoyCheck struct {
	Path          string `json:"path"`
	SHA256        string `json:"sha256"`
	Verified      string `json:"verifiedSha256"`
	TarballSHA256 string `json:"tarballSha256"`
	Machine       string `json:"machine"`
	Version       string `json:"version"`
	// Reused: as BinaryCheck's.
	Reused bool `json:"reused,omitempty"`
}

// ResourceDescriptor is SLSA's reference to an artifact, by URI and digest.
type ResourceDescriptor struct {
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest"`
}

// RunDetails say which builder ran the build, and when.
type RunDetails struct {
	Builder  Builder  `json:"builder"`
	Metadata Metadata `json:"metadata"`
}

// Builder identifies sailmaker, with the versions of it and of BuildKit.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// Metadata of one run of the build.
type Metadata struct {
	InvocationID string    `json:"invocationId"`
	StartedOn    time.Time `json:"startedOn"`
	FinishedOn   time.Time `json:"finishedOn"`
}

// ProvenanceParams is everything a provenance statement records.
type ProvenanceParams struct {
	// Image is the pushed image, by digest.
	Image name.Digest
	// Index, if set, is the image index (of a multi-platform tag) that
	// lists Image: the statement names it as a second subject, so that
	// what verifies attestations by the tag (cosign verify-attestation)
	// finds the statements of the index's images about it.
	Index        *name.Digest
	External     ExternalParameters
	Internal     InternalParameters
	InvocationID string
	// Worker is the build service's BuildKit worker the build ran on; the
	// builder id names it (WorkerBuilderID).
	Worker     string
	StartedOn  time.Time
	FinishedOn time.Time
	// Dependencies are further resolved dependencies (for a package made
	// from binaries already in the registry: those binaries, by digest).
	Dependencies []ResourceDescriptor
}

// WorkerBuilderID is the builder id of builds that ran on a worker of the
// build service's pool: BuilderID/workers/<name>. Builds without a worker
// (the CLI's) have BuilderID.
func WorkerBuilderID(worker string) string {
	if worker == "" {
		return BuilderID
	}
	return BuilderID + "/workers/" + worker
}

// IsBuilderID says whether id is sailmaker's builder id, with or without
// a worker.
func IsBuilderID(id string) bool {
	if id == BuilderID {
		return true
	}
	w, ok := strings.CutPrefix(id, BuilderID+"/workers/")
	return ok && w != "" && !strings.ContainsAny(w, "/?#")
}

// NewProvenance makes the statement for one image. The resolved
// dependencies (source commit, builder, base, Envoy, patches) are derived
// from the external parameters.
func NewProvenance(p ProvenanceParams) (*Statement, error) {
	x := p.External
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"image digest", p.Image.DigestStr()},
		{"recipe.id", x.Recipe.ID}, {"recipe.digest", x.Recipe.Digest},
		{"source.git", x.Source.Git}, {"source.tag", x.Source.Tag}, {"source.commit", x.Source.Commit},
		{"toolchain.builderDigest", x.Toolchain.BuilderDigest},
		{"invocation id", p.InvocationID},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if x.Base.Digest == "" && x.Package == nil {
		// An image has a base; a package or binary has none.
		missing = append(missing, "base.digest")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("provenance: missing %s", strings.Join(missing, ", "))
	}
	if x.Patches == nil {
		x.Patches = []PatchParam{}
	}
	if x.Make.Targets == nil {
		x.Make.Targets = []string{}
	}
	if x.Make.Variables == nil {
		x.Make.Variables = map[string]string{}
	}
	imgDigest, err := digestMap(p.Image.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("provenance: image: %w", err)
	}
	deps := []ResourceDescriptor{{
		Name:   resolvedNameSource,
		URI:    "git+" + x.Source.Git + "@refs/tags/" + x.Source.Tag,
		Digest: map[string]string{"gitCommit": x.Source.Commit},
	}}
	for _, d := range []struct{ name, uri, digest string }{
		{resolvedNameBuilder, x.Toolchain.Builder, x.Toolchain.BuilderDigest},
		{resolvedNameBase, x.Base.Name, x.Base.Digest},
	} {
		if d.digest == "" && d.name == resolvedNameBase {
			continue // a package: checked above
		}
		m, err := digestMap(d.digest)
		if err != nil {
			return nil, fmt.Errorf("provenance: %s: %w", d.name, err)
		}
		deps = append(deps, ResourceDescriptor{Name: d.name, URI: d.uri, Digest: m})
	}
	if x.Envoy != nil {
		deps = append(deps, ResourceDescriptor{Name: resolvedNameEnvoy, URI: x.Envoy.URL, Digest: map[string]string{"sha256": x.Envoy.SHA256}})
	}
	for _, pt := range x.Patches {
		deps = append(deps, ResourceDescriptor{Name: resolvedNamePatch, URI: "file:" + pt.Path, Digest: map[string]string{"sha256": pt.SHA256}})
	}
	deps = append(deps, p.Dependencies...)
	subjects := []Subject{{Name: p.Image.Context().Name(), Digest: imgDigest}}
	if p.Index != nil {
		d, err := digestMap(p.Index.DigestStr())
		if err != nil {
			return nil, fmt.Errorf("provenance: index: %w", err)
		}
		subjects = append(subjects, Subject{Name: p.Index.Context().Name(), Digest: d})
	}
	version := map[string]string{"sailmaker": p.Internal.SailmakerVersion}
	if p.Internal.BuildKitVersion != "" {
		version["buildkit"] = p.Internal.BuildKitVersion
	}
	return &Statement{
		Type:          StatementType,
		Subject:       subjects,
		PredicateType: SLSAProvenanceV1,
		Predicate: Provenance{
			BuildDefinition: BuildDefinition{
				BuildType:            BuildType,
				ExternalParameters:   x,
				InternalParameters:   p.Internal,
				ResolvedDependencies: deps,
			},
			RunDetails: RunDetails{
				Builder: Builder{ID: WorkerBuilderID(p.Worker), Version: version},
				Metadata: Metadata{
					InvocationID: p.InvocationID,
					StartedOn:    p.StartedOn.UTC(),
					FinishedOn:   p.FinishedOn.UTC(),
				},
			},
		},
	}, nil
}

// ParseProvenance reads a provenance document and checks that it is an
// in-toto statement with a SLSA v1 provenance predicate.
func ParseProvenance(b []byte) (*Statement, error) {
	var s Statement
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	if s.Type != StatementType {
		return nil, fmt.Errorf("provenance: _type is %q, want %q", s.Type, StatementType)
	}
	if s.PredicateType != SLSAProvenanceV1 {
		return nil, fmt.Errorf("provenance: predicateType is %q, want %q", s.PredicateType, SLSAProvenanceV1)
	}
	if len(s.Subject) == 0 {
		return nil, errors.New("provenance: no subject")
	}
	return &s, nil
}

// digestMap turns "sha256:<hex>" into {"sha256": "<hex>"}.
func digestMap(d string) (map[string]string, error) {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || hex == "" {
		return nil, fmt.Errorf("digest %q is not algorithm:hex", d)
	}
	return map[string]string{alg: hex}, nil
}

// SailmakerVersion is the running binary's version, as `sailmaker version`
// reports it: the version and commit the Makefile stamps (else Go's build
// info), with +dirty for a modified tree.
func SailmakerVersion() string { return version.Get().String() }
