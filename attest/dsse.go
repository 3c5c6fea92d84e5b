package attest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
)

// DSSE and in-toto names, as cosign and the in-toto attestation framework
// use them.
const (
	// DSSEMediaType is the media type of a layer holding a DSSE envelope.
	DSSEMediaType = "application/vnd.dsse.envelope.v1+json"
	// InTotoPayloadType is the DSSE payload type of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// SPDXPredicateType is the predicate type of an SPDX SBOM in an
	// in-toto statement (cosign's --type spdxjson).
	SPDXPredicateType = "https://spdx.dev/Document"
)

// ErrUnsigned is returned when a document is not in a signed envelope.
var ErrUnsigned = errors.New("not signed")

// Envelope is a DSSE envelope: a payload, its type and signatures over
// PAE(payloadType, payload).
type Envelope struct {
	PayloadType string         `json:"payloadType"`
	Payload     string         `json:"payload"` // base64 (standard, padded)
	Signatures  []EnvelopeSign `json:"signatures"`
}

// EnvelopeSign is one signature of an Envelope.
type EnvelopeSign struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // base64 of the ASN.1 ECDSA signature
}

// pae is DSSE's pre-authentication encoding of a payload and its type.
func pae(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// SignEnvelope wraps payload in a DSSE envelope signed by k. The
// signature is deterministic (RFC 6979), so the same payload and key give
// the same envelope, byte for byte.
func (k *Key) SignEnvelope(payloadType string, payload []byte) (*Envelope, error) {
	sig, err := k.signMessage(pae(payloadType, payload))
	if err != nil {
		return nil, err
	}
	return &Envelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []EnvelopeSign{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	}, nil
}

// signMessage signs the sha256 of msg, deterministically.
func (k *Key) signMessage(msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	return k.priv.Sign(nil, h[:], crypto.SHA256)
}

// Marshal is the envelope's JSON, as it is stored in a layer.
func (e *Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

// ParseEnvelope reads a DSSE envelope.
func ParseEnvelope(b []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("DSSE envelope: %w", err)
	}
	if e.PayloadType == "" || e.Payload == "" {
		return nil, errors.New("DSSE envelope: no payload or payload type")
	}
	return &e, nil
}

// Decode returns the envelope's payload, without checking signatures.
func (e *Envelope) Decode() ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("DSSE envelope: the payload is not base64: %w", err)
	}
	return b, nil
}

// Verify checks that a signature of the envelope verifies with pub and
// returns the payload. It wraps ErrBadSignature when none does.
func (e *Envelope) Verify(pub crypto.PublicKey) ([]byte, error) {
	payload, err := e.Decode()
	if err != nil {
		return nil, err
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading the public key: %w", err)
	}
	msg := pae(e.PayloadType, payload)
	for _, s := range e.Signatures {
		if verifyB64(v, s.Sig, msg) == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("%w: the DSSE envelope has %d signature(s), none by this key", ErrBadSignature, len(e.Signatures))
}

// Document is one attestation about an image as the builder makes it,
// before it is signed or attached.
type Document struct {
	// ArtifactType is the artifact type of the attachment that carries it
	// (ProvenanceArtifactType or SBOMArtifactType); Kind is KindProvenance
	// or KindSBOM.
	ArtifactType string
	Kind         string
	// PredicateType is the in-toto predicate type of Statement.
	PredicateType string
	// Statement is the in-toto statement about the image: what a DSSE
	// envelope signs.
	Statement []byte
	// Plain is what an unsigned attachment carries: the statement for the
	// provenance, the SPDX document itself for the SBOM.
	Plain   []byte
	Created time.Time
}

// Attestation is a Document, signed or not.
type Attestation struct {
	Document
	// Envelope is the DSSE envelope of the statement, when signed.
	Envelope *Envelope
}

// Sign signs the attestation's statement with k.
func (a Attestation) Sign(k *Key) (Attestation, error) {
	env, err := k.SignEnvelope(InTotoPayloadType, a.Statement)
	if err != nil {
		return a, fmt.Errorf("signing the %s: %w", a.Kind, err)
	}
	a.Envelope = env
	return a, nil
}

// Content is the layer an attachment of a carries and its media type:
// the DSSE envelope when signed, else Plain with the artifact type.
func (a Attestation) Content() ([]byte, string, error) {
	if a.Envelope == nil {
		return a.Plain, a.ArtifactType, nil
	}
	b, err := a.Envelope.Marshal()
	return b, DSSEMediaType, err
}

// sbomStatement is an in-toto statement whose predicate is an SPDX document.
type sbomStatement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// ProvenanceDocument makes the Document of a provenance statement.
func ProvenanceDocument(st *Statement, created time.Time) (Document, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return Document{}, err
	}
	return Document{
		ArtifactType: ProvenanceArtifactType, Kind: KindProvenance, PredicateType: SLSAProvenanceV1,
		Statement: raw, Plain: raw, Created: created,
	}, nil
}

// SBOMDocument makes the Document of an SBOM about subject: the SPDX
// document, and an in-toto statement (predicate type SPDXPredicateType)
// around it for signing.
func SBOMDocument(subject Subject, doc *SPDXDocument, created time.Time) (Document, error) {
	return SBOMDocumentFor([]Subject{subject}, doc, created)
}

// SBOMDocumentFor is SBOMDocument about several subjects: an image of an
// index, and the index.
func SBOMDocumentFor(subjects []Subject, doc *SPDXDocument, created time.Time) (Document, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return Document{}, err
	}
	st, err := json.Marshal(sbomStatement{Type: StatementType, Subject: subjects, PredicateType: SPDXPredicateType, Predicate: raw})
	if err != nil {
		return Document{}, err
	}
	return Document{
		ArtifactType: SBOMArtifactType, Kind: KindSBOM, PredicateType: SPDXPredicateType,
		Statement: st, Plain: raw, Created: created,
	}, nil
}

// SBOMFromStatement returns the SPDX document inside an in-toto statement
// with predicate type SPDXPredicateType.
func SBOMFromStatement(b []byte) ([]byte, error) {
	var st sbomStatement
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("sbom statement: %w", err)
	}
	if st.PredicateType != SPDXPredicateType {
		return nil, fmt.Errorf("sbom statement: predicateType is %q, want %q", st.PredicateType, SPDXPredicateType)
	}
	return st.Predicate, nil
}
