package builder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sailmaker/sailmaker/api"
)

// What a build makes besides images (Image.Kind).
const (
	// KindImage is a container image (the default).
	KindImage = api.KindImage
	// KindPackage is a Debian package: an OCI artifact whose one layer is
	// the .deb.
	KindPackage = api.KindPackage
	// KindBinary is one program by itself (a release's istioctl): an OCI
	// artifact whose one layer is the executable.
	KindBinary = api.KindBinary
)

// Artifact types (and the media type of their one layer) of what a build
// makes besides images.
const (
	// ArtifactTypeDeb is a Debian binary package (.deb).
	ArtifactTypeDeb = "application/vnd.debian.binary-package"
	// ArtifactTypeBinary is an executable (a static Go program).
	ArtifactTypeBinary = "application/vnd.sailmaker.executable.v1"
)

// Annotations of package and binary artifacts, besides the OCI ones
// (title, version, created, source, revision) and the build's
// (dev.sailmaker.recipe, .inputs, ...).
const (
	AnnotationPackageName    = "dev.sailmaker.package.name"
	AnnotationPackageVersion = "dev.sailmaker.package.version"
	AnnotationPackageArch    = "dev.sailmaker.package.architecture"
	// AnnotationPackageType is the recipe's package type (istio-cni,
	// istioctl) or istioctl-versions for the multi-version package.
	AnnotationPackageType = "dev.sailmaker.package.type"
	// AnnotationPackageMaintainer is the Maintainer: the package (or, for
	// a binary, the package made from it) has.
	AnnotationPackageMaintainer = "dev.sailmaker.package.maintainer"
	// AnnotationCollection is, on a release's istioctl, the repository of
	// the multi-version package made from it (istio/istioctl-versions).
	AnnotationCollection = "dev.sailmaker.package.collection"
	// AnnotationHolds lists, on a multi-version package, the releases it
	// holds (comma-separated, newest first).
	AnnotationHolds = "dev.sailmaker.package.holds"
)

// artifactConfig is the OCI empty descriptor's content: an artifact has no
// image config.
var artifactConfig = []byte("{}")

// NewArtifact makes an OCI artifact manifest (image-spec 1.1): artifactType,
// the empty config, one layer with the content read from file (or data,
// when file is ""), the layer and the manifest titled title (unless the
// annotations give the manifest's). It is a v1.Image, so everything
// that pushes, signs or attests images handles it. The same content and
// annotations give the same digest.
func NewArtifact(artifactType, file string, data []byte, title string, annotations map[string]string) (v1.Image, error) {
	if artifactType == "" {
		return nil, errors.New("builder.NewArtifact: no artifact type")
	}
	var layer v1.Layer
	if file != "" {
		l, err := fileLayer(file, types.MediaType(artifactType))
		if err != nil {
			return nil, err
		}
		layer = l
	} else {
		layer = static.NewLayer(data, types.MediaType(artifactType))
	}
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	size, err := layer.Size()
	if err != nil {
		return nil, err
	}
	cd, _, err := v1.SHA256(bytes.NewReader(artifactConfig))
	if err != nil {
		return nil, err
	}
	ann := map[string]string{AnnotationTitle: title}
	for k, v := range annotations {
		ann[k] = v
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Digest: cd, Size: int64(len(artifactConfig))},
		Layers: []v1.Descriptor{{MediaType: types.MediaType(artifactType), Digest: ld, Size: size,
			Annotations: map[string]string{AnnotationTitle: title}}},
		Annotations: ann,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifactCore{manifest: raw, layer: layer, layerDigest: ld, configDigest: cd})
}

// artifactCore is the minimal core of an artifact manifest; partial fills
// in the rest of v1.Image.
type artifactCore struct {
	manifest     []byte
	layer        v1.Layer
	layerDigest  v1.Hash
	configDigest v1.Hash
}

func (a *artifactCore) RawConfigFile() ([]byte, error)      { return artifactConfig, nil }
func (a *artifactCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifactCore) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifactCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	switch h {
	case a.layerDigest:
		return a.layer, nil
	case a.configDigest:
		return static.NewLayer(artifactConfig, types.OCIEmptyJSON), nil
	}
	return nil, fmt.Errorf("artifact has no blob %s", h)
}

// fileLayer is a layer whose content is a file as it is (no tar, no
// compression), read when it is pushed.
func fileLayer(file string, mt types.MediaType) (v1.Layer, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return partial.CompressedToLayer(&rawFile{path: file, digest: h, size: n, mt: mt})
}

type rawFile struct {
	path   string
	digest v1.Hash
	size   int64
	mt     types.MediaType
}

func (r *rawFile) Digest() (v1.Hash, error)             { return r.digest, nil }
func (r *rawFile) Size() (int64, error)                 { return r.size, nil }
func (r *rawFile) MediaType() (types.MediaType, error)  { return r.mt, nil }
func (r *rawFile) Compressed() (io.ReadCloser, error)   { return os.Open(r.path) }
func (r *rawFile) Uncompressed() (io.ReadCloser, error) { return os.Open(r.path) }
func (r *rawFile) DiffID() (v1.Hash, error)             { return r.digest, nil }

// ArtifactType is the artifactType of an artifact manifest, "" for an image.
func ArtifactType(img v1.Image) (string, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return "", err
	}
	var m struct {
		ArtifactType string `json:"artifactType"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", err
	}
	return m.ArtifactType, nil
}

// ArtifactContent reads the one layer of an artifact of the given type:
// the .deb, or the binary. It checks the manifest's shape and the
// content's digest.
func ArtifactContent(img v1.Image, artifactType string) ([]byte, error) {
	at, err := ArtifactType(img)
	if err != nil {
		return nil, err
	}
	if at != artifactType {
		return nil, fmt.Errorf("the artifact's type is %q, not %s", at, artifactType)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != 1 {
		return nil, fmt.Errorf("the %s artifact has %d layers, not one", artifactType, len(layers))
	}
	want, err := layers[0].Digest()
	if err != nil {
		return nil, err
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	got, _, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, fmt.Errorf("the %s artifact's content has digest %s, its manifest says %s", artifactType, got, want)
	}
	return data, nil
}
