package registry_test

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
)

// PushAll's attachments and Client.Attached work on both kinds of
// registry: on the embedded one through the referrers API, with no
// sha256-<hex> fallback tag; on Debian's docker-registry (no referrers API)
// through the fallback tag, which go-containerregistry writes and reads.
func TestAttachedWithAndWithoutReferrersAPI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		addr     func(t *testing.T) string
		fallback bool
	}{
		{"embedded", func(t *testing.T) string { return serve(t, t.TempDir()).Addr() }, false},
		{"debian-docker-registry", func(t *testing.T) string { return testenv.Distribution(t) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := config.Default()
			cfg.Registry.Address = tc.addr(t)
			c, err := registry.NewClient(cfg)
			require.NoError(t, err)
			tag, err := c.Tag("istio/pilot", "1.0.0")
			require.NoError(t, err)
			img, err := random.Image(512, 1)
			require.NoError(t, err)
			desc, err := partial.Descriptor(img)
			require.NoError(t, err)
			var atts []registry.Attachment
			want := map[string]v1.Hash{}
			for _, at := range []string{"application/vnd.in-toto+json", "application/spdx+json"} {
				a, err := attest.Attachment(*desc, at, "test", []byte(`{"type":"`+at+`"}`), time.Now())
				require.NoError(t, err)
				atts = append(atts, registry.Attachment{ArtifactType: at, Image: a})
				want[at], _ = a.Digest()
			}
			out, err := c.PushAll(ctx, []registry.Pending{{Tag: tag, Image: img, Attachments: atts}}, false)
			require.NoError(t, err)
			assert.Equal(t, want, out[0].Attached)

			byDigest := tag.Context().Digest(desc.Digest.String())
			have, err := c.Attached(ctx, byDigest)
			require.NoError(t, err)
			require.Len(t, have, 2)
			for at, d := range want {
				assert.Equal(t, d, have[at].Digest, at)
			}

			tags, err := remote.List(tag.Context(), c.Remote(ctx)...)
			require.NoError(t, err)
			fallback := "sha256-" + desc.Digest.Hex
			if tc.fallback {
				assert.ElementsMatch(t, []string{"1.0.0", fallback}, tags, "go-containerregistry keeps the fallback tag")
			} else {
				assert.Equal(t, []string{"1.0.0"}, tags, "no fallback tag where the referrers API is served")
			}

			// Pushed again: nothing new attached, on both.
			again, err := c.PushAll(ctx, []registry.Pending{{Tag: tag, Image: img, Attachments: atts}}, false)
			require.NoError(t, err)
			assert.True(t, again[0].Unchanged)
			assert.Equal(t, want, again[0].Attached)
		})
	}
}
