package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/config"
)

func newClient(t *testing.T) *Client {
	s := startServer(t, t.TempDir())
	cfg := config.Default()
	cfg.Registry.Address = s.Addr()
	c, err := NewClient(cfg)
	require.NoError(t, err)
	return c
}

// Tags are immutable: pushing other content under a taken tag is refused,
// for all images of the push, before anything is uploaded; --force moves it
// and says from where.
func TestPushAllTagPolicy(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	a, err := c.Tag("istio/pilot", "1.0.0")
	require.NoError(t, err)
	b, err := c.Tag("istio/proxyv2", "1.0.0")
	require.NoError(t, err)
	img1, _ := random.Image(512, 1)
	img2, _ := random.Image(512, 1)
	img3, _ := random.Image(512, 1)

	first, err := c.PushAll(ctx, []Pending{{Tag: a, Image: img1}}, false)
	require.NoError(t, err)
	assert.False(t, first[0].Unchanged)
	assert.Positive(t, first[0].BytesUploaded)

	// Same content again: nothing to do.
	again, err := c.PushAll(ctx, []Pending{{Tag: a, Image: img1}}, false)
	require.NoError(t, err)
	assert.True(t, again[0].Unchanged)

	// b is new, a would move: refused as a whole, b is not pushed either.
	_, err = c.PushAll(ctx, []Pending{{Tag: b, Image: img3}, {Tag: a, Image: img2}}, false)
	require.ErrorIs(t, err, ErrTagMoved)
	assert.Contains(t, err.Error(), "--force")
	_, ok, err := c.Resolve(ctx, b)
	require.NoError(t, err)
	assert.False(t, ok, "nothing is tagged when one tag is refused")

	forced, err := c.PushAll(ctx, []Pending{{Tag: a, Image: img2}}, true)
	require.NoError(t, err)
	assert.True(t, forced[0].Forced)
	d1, _ := img1.Digest()
	d2, _ := img2.Digest()
	require.NotNil(t, forced[0].Previous)
	assert.Equal(t, d1, *forced[0].Previous)
	got, ok, err := c.Resolve(ctx, a)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, d2, got)
}

func attachment(t *testing.T, img v1.Image, artifactType, doc string) Attachment {
	t.Helper()
	desc, err := partial.Descriptor(img)
	require.NoError(t, err)
	a, err := attest.Attachment(*desc, artifactType, "test", []byte(doc), time.Now())
	require.NoError(t, err)
	return Attachment{ArtifactType: artifactType, Image: a}
}

// Attachments and the signature are in the registry before the tag is
// written; an image the tag already names gets only the artifact types it
// lacks.
func TestPushAllAttachments(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	tag, err := c.Tag("istio/pilot", "1.0.0")
	require.NoError(t, err)
	img, _ := random.Image(512, 1)
	d, _ := img.Digest()
	byDigest := tag.Context().Digest(d.String())

	prov := attachment(t, img, "application/vnd.in-toto+json", `{"n":1}`)
	var signed []name.Digest
	sign := func(ctx context.Context, ref name.Digest) (v1.Hash, error) {
		// Called with the attachments in and the tag not yet written.
		_, tagged, err := c.Resolve(ctx, tag)
		if err != nil {
			return v1.Hash{}, err
		}
		have, err := c.Attached(ctx, ref)
		if err != nil {
			return v1.Hash{}, err
		}
		if tagged && len(signed) == 0 {
			return v1.Hash{}, fmt.Errorf("the tag was written before signing")
		}
		if _, ok := have["application/vnd.in-toto+json"]; !ok {
			return v1.Hash{}, fmt.Errorf("signing before the attachments are in")
		}
		signed = append(signed, ref)
		return v1.NewHash("sha256:" + fmt.Sprintf("%064d", len(signed)))
	}
	out, err := c.PushAll(ctx, []Pending{{Tag: tag, Image: img, Attachments: []Attachment{prov}, Sign: sign}}, false)
	require.NoError(t, err)
	pd, _ := prov.Image.Digest()
	assert.Equal(t, map[string]v1.Hash{"application/vnd.in-toto+json": pd}, out[0].Attached)
	require.NotNil(t, out[0].SignatureDigest)
	assert.Equal(t, []name.Digest{byDigest}, signed)

	idx, err := remote.Referrers(byDigest, c.Remote(ctx)...)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	assert.Equal(t, pd, im.Manifests[0].Digest)

	// Unchanged: a second provenance (another build's) is not added, an
	// SBOM the image lacked is; Sign is asked again.
	prov2 := attachment(t, img, "application/vnd.in-toto+json", `{"n":2}`)
	sbom := attachment(t, img, "application/spdx+json", `{}`)
	again, err := c.PushAll(ctx, []Pending{{Tag: tag, Image: img, Attachments: []Attachment{prov2, sbom}, Sign: sign}}, false)
	require.NoError(t, err)
	assert.True(t, again[0].Unchanged)
	sd, _ := sbom.Image.Digest()
	assert.Equal(t, map[string]v1.Hash{"application/vnd.in-toto+json": pd, "application/spdx+json": sd}, again[0].Attached)
	assert.Len(t, signed, 2)
	have, err := c.Attached(ctx, byDigest)
	require.NoError(t, err)
	assert.Len(t, have, 2)
	assert.Equal(t, pd, have["application/vnd.in-toto+json"].Digest)
}

// A failing signature leaves the tag unwritten.
func TestPushAllSignFailureWritesNoTag(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	tag, err := c.Tag("istio/pilot", "1.0.0")
	require.NoError(t, err)
	img, _ := random.Image(512, 1)
	_, err = c.PushAll(ctx, []Pending{{Tag: tag, Image: img, Sign: func(context.Context, name.Digest) (v1.Hash, error) {
		return v1.Hash{}, fmt.Errorf("no key today")
	}}}, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no key today")
	_, ok, err := c.Resolve(ctx, tag)
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestParseRefPolicy(t *testing.T) {
	c := newClient(t)
	_, err := c.ParseRef("docker.io/library/golang:1.23")
	assert.ErrorIs(t, err, ErrDockerHub)
	_, err = c.ParseRef("golang:1.23")
	assert.ErrorIs(t, err, ErrNotQualified)
	ref, err := c.ParseRef(c.Config().Registry.Address + "/base/bookworm:1")
	require.NoError(t, err)
	assert.Equal(t, "http", ref.Context().Registry.Scheme())
}

// BytesUploaded counts what went over the wire: a second image that shares
// all but one layer with the first uploads only that layer (and its config).
func TestPushAllCountsOnlyNewBlobs(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	base, err := random.Image(4096, 3)
	require.NoError(t, err)
	extra, err := random.Layer(1024, types.DockerLayer)
	require.NoError(t, err)
	derived, err := mutate.AppendLayers(base, extra)
	require.NoError(t, err)
	a, _ := c.Tag("x/base", "1")
	b, _ := c.Tag("x/base", "2")

	first, err := c.PushAll(ctx, []Pending{{Tag: a, Image: base}}, false)
	require.NoError(t, err)
	baseLayers, _ := base.Layers()
	var baseBytes int64
	for _, l := range baseLayers {
		n, _ := l.Size()
		baseBytes += n
	}
	assert.GreaterOrEqual(t, first[0].BytesUploaded, baseBytes)

	second, err := c.PushAll(ctx, []Pending{{Tag: b, Image: derived}}, false)
	require.NoError(t, err)
	extraSize, _ := extra.Size()
	cfgSize := mustConfigSize(t, derived)
	assert.Equal(t, extraSize+cfgSize, second[0].BytesUploaded, "only the new layer and the config are uploaded")
}

func mustConfigSize(t *testing.T, img v1.Image) int64 {
	m, err := img.Manifest()
	require.NoError(t, err)
	return m.Config.Size
}
