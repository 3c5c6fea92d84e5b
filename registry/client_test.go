package registry

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
