// Package attest makes what sailmaker attaches to every image it pushes: a
// SLSA v1 provenance statement (in-toto), an SPDX 2.3 SBOM and, when a key
// is configured, a cosign-compatible signature.
//
// Provenance and SBOM are OCI 1.1 artifacts that refer to the image (its
// manifest is their subject): an image manifest with an artifactType, the
// empty config and one layer holding the document. Registries without the
// referrers API get them through the fallback tag sha256-<hex>, which
// go-containerregistry's remote.Write maintains and remote.Referrers reads.
// The signature follows cosign's tag scheme: sha256-<hex>.sig in the image's
// repository. Nothing here changes the image itself: everything per build
// (who triggered it, when) lives only in the attachments.
package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact types of the attachments, also the media type of their one layer.
const (
	ProvenanceArtifactType = "application/vnd.in-toto+json"
	SBOMArtifactType       = "application/spdx+json"
)

// Annotations on an attachment's manifest.
const (
	// AnnotationCreated is when the attachment was made (RFC 3339).
	AnnotationCreated = "org.opencontainers.image.created"
	// AnnotationKind says what the attachment is: KindProvenance or KindSBOM.
	AnnotationKind = "dev.sailmaker.attestation"
	KindProvenance = "provenance"
	KindSBOM       = "sbom"
	// AnnotationSigned is "true" on an attachment whose document is a
	// DSSE envelope (DSSEMediaType) signed with the build's key.
	AnnotationSigned = "dev.sailmaker.signed"
)

// emptyConfig is the OCI empty descriptor's content.
var emptyConfig = []byte("{}")

// Attachment makes the OCI artifact manifest that carries doc for subject
// (the image manifest's descriptor): artifactType and the layer's media
// type are artifactType, the config is the OCI empty descriptor, and the
// manifest is annotated with created and kind. Push it by digest with
// remote.Write; the registry (or ggcr's fallback tag) lists it as a
// referrer of subject.
func Attachment(subject v1.Descriptor, artifactType, kind string, doc []byte, created time.Time) (v1.Image, error) {
	return attachment(subject, artifactType, types.MediaType(artifactType), kind, doc, created, false)
}

// AttachmentOf makes the attachment manifest for a: as Attachment, with
// the DSSE envelope as its document (and AnnotationSigned) when a is signed.
func AttachmentOf(subject v1.Descriptor, a Attestation) (v1.Image, error) {
	doc, mt, err := a.Content()
	if err != nil {
		return nil, err
	}
	return attachment(subject, a.ArtifactType, types.MediaType(mt), a.Kind, doc, a.Created, a.Envelope != nil)
}

func attachment(subject v1.Descriptor, artifactType string, layerType types.MediaType, kind string, doc []byte, created time.Time, signed bool) (v1.Image, error) {
	if subject.Digest.Hex == "" || subject.MediaType == "" || subject.Size <= 0 {
		return nil, errors.New("attest.Attachment: the subject needs a media type, digest and size")
	}
	if artifactType == "" || len(doc) == 0 {
		return nil, errors.New("attest.Attachment: an artifact type and a document are required")
	}
	layer := static.NewLayer(doc, layerType)
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	cd, _, err := v1.SHA256(bytes.NewReader(emptyConfig))
	if err != nil {
		return nil, err
	}
	sub := v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Digest: cd, Size: int64(len(emptyConfig))},
		Layers:        []v1.Descriptor{{MediaType: layerType, Digest: ld, Size: int64(len(doc))}},
		Annotations: map[string]string{
			AnnotationCreated: created.UTC().Format(time.RFC3339),
			AnnotationKind:    kind,
		},
		Subject: &sub,
	}
	if signed {
		m.Annotations[AnnotationSigned] = "true"
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{manifest: raw, layer: layer, layerDigest: ld})
}

// artifact is the minimal core of an OCI artifact manifest; partial fills in
// the rest of v1.Image. (mutate would write a full image config, not the
// empty descriptor, and has no artifactType.)
type artifact struct {
	manifest    []byte
	layer       v1.Layer
	layerDigest v1.Hash
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return emptyConfig, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == a.layerDigest {
		return a.layer, nil
	}
	cd, _, err := v1.SHA256(bytes.NewReader(emptyConfig))
	if err != nil {
		return nil, err
	}
	if h == cd {
		return static.NewLayer(emptyConfig, types.OCIEmptyJSON), nil
	}
	return nil, fmt.Errorf("attestation artifact has no blob %s", h)
}
