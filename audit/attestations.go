package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Values the provenance of a sailmaker build carries.
const (
	StatementType       = "https://in-toto.io/Statement/v1"
	PredicateSLSA       = "https://slsa.dev/provenance/v1"
	SailmakerBuildType  = "https://sailmaker.dev/build/v1"
	SailmakerBuilderID  = "https://sailmaker.dev/sailmaker"
	annotationCreated   = "org.opencontainers.image.created"
	emptyConfigMedia    = "application/vnd.oci.empty.v1+json"
	purlGolang          = "pkg:golang/"
	purlDebian          = "pkg:deb/"
	spdxVersion         = "SPDX-2.3"
	maxAttachmentsRead  = 16
	errInvalidAttachMsg = "attachment %s: %s"
)

// Statement is the in-toto Statement v1 of a sailmaker provenance, as the
// attestation contract lays it out.
type Statement struct {
	Type          string        `json:"_type"`
	Subject       []Subject     `json:"subject"`
	PredicateType string        `json:"predicateType"`
	Predicate     SLSAPredicate `json:"predicate"`
}

// Subject is what a statement is about.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// SLSAPredicate is the SLSA provenance v1 predicate.
type SLSAPredicate struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built and from what.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   InternalParameters   `json:"internalParameters"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ExternalParameters are the recipe's pins and what the build was asked for.
type ExternalParameters struct {
	Recipe struct {
		ID     string `json:"id"`
		Digest string `json:"digest"`
	} `json:"recipe"`
	Source struct {
		Git    string `json:"git"`
		Tag    string `json:"tag"`
		Commit string `json:"commit"`
	} `json:"source"`
	Patches []struct {
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
	} `json:"patches,omitempty"`
	Make struct {
		Targets   []string          `json:"targets,omitempty"`
		Variables map[string]string `json:"variables,omitempty"`
	} `json:"make"`
	Envoy struct {
		URL      string `json:"url,omitempty"`
		SHA256   string `json:"sha256,omitempty"`
		ProxySHA string `json:"proxySha,omitempty"`
		Override bool   `json:"override,omitempty"`
	} `json:"envoy"`
	Toolchain struct {
		Go            string `json:"go,omitempty"`
		Builder       string `json:"builder,omitempty"`
		BuilderDigest string `json:"builderDigest,omitempty"`
	} `json:"toolchain"`
	Base struct {
		Name   string `json:"name,omitempty"`
		Digest string `json:"digest,omitempty"`
	} `json:"base"`
	Image struct {
		Name       string `json:"name,omitempty"`
		Repository string `json:"repository,omitempty"`
		Tag        string `json:"tag,omitempty"`
	} `json:"image"`
}

// InternalParameters are the builder's own settings and the trigger.
type InternalParameters struct {
	BuildkitVersion  string `json:"buildkitVersion,omitempty"`
	SailmakerVersion string `json:"sailmakerVersion,omitempty"`
	InputsKey        string `json:"inputsKey,omitempty"`
	Trigger          struct {
		Actor      string `json:"actor,omitempty"`
		Kind       string `json:"kind,omitempty"`
		DeliveryID string `json:"deliveryId,omitempty"`
		BuildID    string `json:"buildId,omitempty"`
		Time       string `json:"time,omitempty"`
	} `json:"trigger"`
}

// ResourceDescriptor is an SLSA resolved dependency.
type ResourceDescriptor struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest,omitempty"`
}

// RunDetails say who built it and when.
type RunDetails struct {
	Builder struct {
		ID string `json:"id"`
	} `json:"builder"`
	Metadata struct {
		InvocationID string `json:"invocationId,omitempty"`
		StartedOn    string `json:"startedOn,omitempty"`
		FinishedOn   string `json:"finishedOn,omitempty"`
	} `json:"metadata"`
}

// Provenance is an image's provenance attachment.
type Provenance struct {
	// Attachment is the digest of the attachment manifest.
	Attachment string    `json:"attachment"`
	Created    string    `json:"created,omitempty"`
	Statement  Statement `json:"statement"`
}

// Commit is the source commit the provenance names.
func (p *Provenance) Commit() string {
	return p.Statement.Predicate.BuildDefinition.ExternalParameters.Source.Commit
}

// Package is a Go module or a Debian package in an image.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl,omitempty"`
}

// SBOM is the summary of an image's SPDX SBOM.
type SBOM struct {
	Attachment     string    `json:"attachment,omitempty"`
	Created        string    `json:"created,omitempty"`
	Name           string    `json:"name,omitempty"`
	Namespace      string    `json:"namespace,omitempty"`
	GoModules      []Package `json:"goModules"`
	DebianPackages []Package `json:"debianPackages"`
	// Other counts packages that are neither.
	Other int `json:"other,omitempty"`
	// FromLabel is set when there is no SBOM and the Debian packages
	// come from a base image's dev.sailmaker.packages label.
	FromLabel bool `json:"fromLabel,omitempty"`
}

// invalidError is an attachment that was read but is not what the contract
// says: a finding, not a read failure.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// attachment reads an attachment's manifest and its single document.
func (s *session) attachment(ctx context.Context, r *record, d v1.Descriptor, artifactType string) (doc []byte, created string, err error) {
	raw, err := s.manifest(ctx, r.repo, d.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("reading attachment %s of %s: %w", d.Digest, r.Name(), err)
	}
	pm, err := parseManifest(raw)
	if err != nil || pm.image == nil {
		return nil, "", invalidf(errInvalidAttachMsg, d.Digest, "not an image manifest")
	}
	m := pm.image
	if m.Subject == nil || m.Subject.Digest != r.digest {
		return nil, "", invalidf(errInvalidAttachMsg, d.Digest, "its subject is not "+r.Digest)
	}
	if len(m.Layers) != 1 {
		return nil, "", invalidf(errInvalidAttachMsg, d.Digest, fmt.Sprintf("has %d layers, not one document", len(m.Layers)))
	}
	if string(m.Layers[0].MediaType) != artifactType {
		return nil, "", invalidf(errInvalidAttachMsg, d.Digest, fmt.Sprintf("its document is %s, not %s", m.Layers[0].MediaType, artifactType))
	}
	b, err := s.blob(ctx, r.repo, m.Layers[0].Digest)
	if err != nil {
		return nil, "", fmt.Errorf("reading attachment %s of %s: %w", d.Digest, r.Name(), err)
	}
	return b, m.Annotations[annotationCreated], nil
}

// newest reads the attachments of one artifact type and returns the newest
// valid one by its created annotation (RFC 3339 in UTC sorts as text),
// parsed by parse: nil when there is none, an *invalidError when there are
// attachments but none is valid.
func newest[T any](ctx context.Context, s *session, r *record, artifactType string, parse func(digest string, doc []byte, created string) (*T, error)) (*T, error) {
	descs := r.referrersOf(artifactType)
	if len(descs) == 0 {
		return nil, nil
	}
	if len(descs) > maxAttachmentsRead {
		descs = descs[len(descs)-maxAttachmentsRead:]
	}
	var best *T
	var bestCreated string
	var firstInvalid error
	for _, d := range descs {
		doc, created, err := s.attachment(ctx, r, d, artifactType)
		if err == nil {
			var v *T
			if v, err = parse(d.Digest.String(), doc, created); err == nil {
				if best == nil || created >= bestCreated {
					best, bestCreated = v, created
				}
				continue
			}
		}
		if _, ok := err.(*invalidError); !ok {
			return nil, err
		}
		if firstInvalid == nil {
			firstInvalid = err
		}
	}
	if best == nil {
		return nil, firstInvalid
	}
	return best, nil
}

// provenance reads r's provenance; nil when it has none.
func (s *session) provenance(ctx context.Context, r *record) (*Provenance, error) {
	return newest(ctx, s, r, ArtifactTypeProvenance, func(digest string, doc []byte, created string) (*Provenance, error) {
		var st Statement
		dec := json.NewDecoder(bytes.NewReader(doc))
		if err := dec.Decode(&st); err != nil {
			return nil, invalidf("provenance %s is not an in-toto statement: %v", digest, err)
		}
		if st.Type != StatementType {
			return nil, invalidf("provenance %s: _type is %q, not %s", digest, st.Type, StatementType)
		}
		if st.PredicateType != PredicateSLSA {
			return nil, invalidf("provenance %s: predicateType is %q, not %s", digest, st.PredicateType, PredicateSLSA)
		}
		return &Provenance{Attachment: digest, Created: created, Statement: st}, nil
	})
}

type spdxDoc struct {
	SPDXVersion       string `json:"spdxVersion"`
	Name              string `json:"name"`
	DocumentNamespace string `json:"documentNamespace"`
	CreationInfo      struct {
		Created string `json:"created"`
	} `json:"creationInfo"`
	Packages []struct {
		Name         string `json:"name"`
		VersionInfo  string `json:"versionInfo"`
		ExternalRefs []struct {
			Category string `json:"referenceCategory"`
			Type     string `json:"referenceType"`
			Locator  string `json:"referenceLocator"`
		} `json:"externalRefs"`
	} `json:"packages"`
}

// sbom reads r's SBOM summary; nil when it has none.
func (s *session) sbom(ctx context.Context, r *record) (*SBOM, error) {
	return newest(ctx, s, r, ArtifactTypeSBOM, func(digest string, doc []byte, created string) (*SBOM, error) {
		var d spdxDoc
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, invalidf("SBOM %s is not SPDX JSON: %v", digest, err)
		}
		if d.SPDXVersion != spdxVersion {
			return nil, invalidf("SBOM %s: spdxVersion is %q, not %s", digest, d.SPDXVersion, spdxVersion)
		}
		out := &SBOM{Attachment: digest, Created: created, Name: d.Name, Namespace: d.DocumentNamespace, GoModules: []Package{}, DebianPackages: []Package{}}
		if out.Created == "" {
			out.Created = d.CreationInfo.Created
		}
		for _, p := range d.Packages {
			purl := ""
			for _, ref := range p.ExternalRefs {
				if ref.Type == "purl" {
					purl = ref.Locator
					break
				}
			}
			pkg := Package{Name: p.Name, Version: p.VersionInfo, PURL: purl}
			switch {
			case strings.HasPrefix(purl, purlGolang):
				out.GoModules = append(out.GoModules, pkg)
			case strings.HasPrefix(purl, purlDebian):
				out.DebianPackages = append(out.DebianPackages, pkg)
			default:
				out.Other++
			}
		}
		sortPackages(out.GoModules)
		sortPackages(out.DebianPackages)
		return out, nil
	})
}

func sortPackages(p []Package) {
	sort.Slice(p, func(i, j int) bool {
		if p[i].Name != p[j].Name {
			return p[i].Name < p[j].Name
		}
		return p[i].Version < p[j].Version
	})
}

// packagesLabel parses a base image's dev.sailmaker.packages label
// (name=version, comma separated).
func packagesLabel(v string) []Package {
	out := []Package{}
	for _, nv := range strings.Split(v, ",") {
		n, ver, _ := strings.Cut(strings.TrimSpace(nv), "=")
		if n == "" {
			continue
		}
		out = append(out, Package{Name: n, Version: ver, PURL: "pkg:deb/debian/" + n + "@" + ver + "?arch=amd64"})
	}
	sortPackages(out)
	return out
}
