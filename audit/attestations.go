package audit

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sailmaker/sailmaker/attest"
)

const (
	annotationCreated   = attest.AnnotationCreated
	purlGolang          = "pkg:golang/"
	purlDebian          = "pkg:deb/"
	maxAttachmentsRead  = 16
	errInvalidAttachMsg = "attachment %s: %s"
)

// Provenance is an image's provenance attachment: the attest package's
// in-toto statement (SLSA v1 provenance predicate).
type Provenance struct {
	// Attachment is the digest of the attachment manifest.
	Attachment string `json:"attachment"`
	Created    string `json:"created,omitempty"`
	// Signed says whether the statement came in a DSSE envelope signed
	// with the key: valid, invalid, present (no key to check) or unsigned.
	Signed         string           `json:"signed"`
	SignatureError string           `json:"signatureError,omitempty"`
	Statement      attest.Statement `json:"statement"`
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
	Attachment string `json:"attachment,omitempty"`
	Created    string `json:"created,omitempty"`
	// Signed is as Provenance's.
	Signed         string    `json:"signed,omitempty"`
	SignatureError string    `json:"signatureError,omitempty"`
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

// Attestation signature states: a signed attachment's DSSE envelope
// verifies with the key (valid), does not (invalid), or there is no key to
// check it with (present); an unsigned attachment is a plain document.
const (
	AttestationSigned   = "valid"
	AttestationInvalid  = "invalid"
	AttestationPresent  = "present"
	AttestationUnsigned = "unsigned"
)

// document is one attachment's document, read.
type document struct {
	doc     []byte
	created string
	// signed is one of the Attestation* states.
	signed string
	why    string // why an envelope did not verify
}

// attachment reads an attachment's manifest and its single document: the
// document itself, or the statement of a signed attachment's DSSE envelope
// (for an SBOM, the SPDX document in the statement), with what its
// signature says.
func (s *session) attachment(ctx context.Context, r *record, d v1.Descriptor, artifactType string) (document, error) {
	raw, err := s.manifest(ctx, r.repo, d.Digest)
	if err != nil {
		return document{}, fmt.Errorf("reading attachment %s of %s: %w", d.Digest, r.Name(), err)
	}
	pm, err := parseManifest(raw)
	if err != nil || pm.image == nil {
		return document{}, invalidf(errInvalidAttachMsg, d.Digest, "not an image manifest")
	}
	m := pm.image
	if m.Subject == nil || m.Subject.Digest != r.digest {
		return document{}, invalidf(errInvalidAttachMsg, d.Digest, "its subject is not "+r.Digest)
	}
	if len(m.Layers) != 1 {
		return document{}, invalidf(errInvalidAttachMsg, d.Digest, fmt.Sprintf("has %d layers, not one document", len(m.Layers)))
	}
	mt := string(m.Layers[0].MediaType)
	if mt != artifactType && mt != attest.DSSEMediaType {
		return document{}, invalidf(errInvalidAttachMsg, d.Digest, fmt.Sprintf("its document is %s, not %s or a DSSE envelope", mt, artifactType))
	}
	b, err := s.blob(ctx, r.repo, m.Layers[0].Digest)
	if err != nil {
		return document{}, fmt.Errorf("reading attachment %s of %s: %w", d.Digest, r.Name(), err)
	}
	out := document{doc: b, created: m.Annotations[annotationCreated], signed: AttestationUnsigned}
	if mt == attest.DSSEMediaType {
		if out.doc, out.signed, out.why, err = s.openEnvelope(b, artifactType); err != nil {
			return document{}, invalidf(errInvalidAttachMsg, d.Digest, err.Error())
		}
	}
	return out, nil
}

// openEnvelope reads a DSSE envelope: the statement it carries (for an
// SBOM, the SPDX document inside), and whether the key verifies it.
func (s *session) openEnvelope(b []byte, artifactType string) (doc []byte, signed, why string, err error) {
	env, err := attest.ParseEnvelope(b)
	if err != nil {
		return nil, "", "", err
	}
	if env.PayloadType != attest.InTotoPayloadType {
		return nil, "", "", fmt.Errorf("its DSSE payload is %s, not an in-toto statement", env.PayloadType)
	}
	signed = AttestationPresent
	if ev, ok := s.a.verifier.(EnvelopeVerifier); ok {
		signed = AttestationSigned
		if err := ev.VerifyEnvelope(env); err != nil {
			signed, why = AttestationInvalid, err.Error()
		}
	}
	if doc, err = env.Decode(); err != nil {
		return nil, "", "", err
	}
	if artifactType == ArtifactTypeSBOM {
		if doc, err = attest.SBOMFromStatement(doc); err != nil {
			return nil, "", "", err
		}
	}
	return doc, signed, why, nil
}

// newest reads the attachments of one artifact type and returns the newest
// valid one by its created annotation (RFC 3339 in UTC sorts as text),
// parsed by parse: nil when there is none, an *invalidError when there are
// attachments but none is valid.
func newest[T any](ctx context.Context, s *session, r *record, artifactType string, parse func(digest string, d document) (*T, error)) (*T, error) {
	descs := r.referrersOf(artifactType)
	if len(descs) == 0 {
		return nil, nil
	}
	if len(descs) > maxAttachmentsRead {
		descs = descs[len(descs)-maxAttachmentsRead:]
	}
	var best *T
	var bestKey string
	var firstInvalid error
	for _, d := range descs {
		doc, err := s.attachment(ctx, r, d, artifactType)
		if err == nil {
			var v *T
			if v, err = parse(d.Digest.String(), doc); err == nil {
				// Newest first; of two made in the same second, a signed one.
				key := doc.created + "|" + strconv.FormatBool(doc.signed != AttestationUnsigned)
				if best == nil || key >= bestKey {
					best, bestKey = v, key
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
	return newest(ctx, s, r, ArtifactTypeProvenance, func(digest string, d document) (*Provenance, error) {
		st, err := attest.ParseProvenance(d.doc)
		if err != nil {
			return nil, invalidf("attachment %s: %v", digest, err)
		}
		return &Provenance{Attachment: digest, Created: d.created, Signed: d.signed, SignatureError: d.why, Statement: *st}, nil
	})
}

// sbom reads r's SBOM summary; nil when it has none.
func (s *session) sbom(ctx context.Context, r *record) (*SBOM, error) {
	return newest(ctx, s, r, ArtifactTypeSBOM, func(digest string, doc document) (*SBOM, error) {
		d, err := attest.ParseSBOM(doc.doc)
		if err != nil {
			return nil, invalidf("attachment %s: %v", digest, err)
		}
		out := &SBOM{Attachment: digest, Created: doc.created, Signed: doc.signed, SignatureError: doc.why, Name: d.Name, Namespace: d.DocumentNamespace, GoModules: []Package{}, DebianPackages: []Package{}}
		if out.Created == "" {
			out.Created = d.CreationInfo.Created
		}
		for _, p := range d.Packages {
			pkg := Package{Name: p.Name, Version: p.VersionInfo, PURL: p.Purl()}
			switch {
			case strings.HasPrefix(pkg.PURL, purlGolang):
				out.GoModules = append(out.GoModules, pkg)
			case strings.HasPrefix(pkg.PURL, purlDebian):
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
func packagesLabel(v string) ([]Package, error) {
	debs, err := attest.ParseDebianPackages(v)
	if err != nil {
		return nil, err
	}
	out := []Package{}
	for _, d := range debs {
		out = append(out, Package{Name: d.Name, Version: d.Version})
	}
	sortPackages(out)
	return out, nil
}
