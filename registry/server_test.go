package registry

import (
	"context"
	"os"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
)

func startServer(t *testing.T, root string) *Server {
	t.Helper()
	s, err := NewServer(context.Background(), root)
	require.NoError(t, err)
	require.NoError(t, s.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// The checks a client relies on: push, pull, HEAD, tag list, catalog,
// manifests by digest, delete; and content that survives a restart.
func TestServerDistributionAPI(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := startServer(t, root)
	require.NoError(t, Ping(ctx, s.Addr(), true))

	img, err := random.Image(1024, 2)
	require.NoError(t, err)
	tag, err := name.NewTag(s.Addr()+"/team/app:v1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img, remote.WithContext(ctx)))

	want, err := img.Digest()
	require.NoError(t, err)
	desc, err := remote.Head(tag)
	require.NoError(t, err)
	require.Equal(t, want, desc.Digest)

	byDigest := tag.Context().Digest(want.String())
	pulled, err := remote.Image(byDigest)
	require.NoError(t, err)
	layers, err := pulled.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2)
	rc, err := layers[0].Compressed()
	require.NoError(t, err)
	require.NoError(t, rc.Close())

	tags, err := remote.List(tag.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"v1"}, tags)

	reg, err := name.NewRegistry(s.Addr(), name.Insecure)
	require.NoError(t, err)
	repos, err := remote.Catalog(ctx, reg)
	require.NoError(t, err)
	require.Equal(t, []string{"team/app"}, repos)

	// Restart on the same root: nothing is lost.
	require.NoError(t, s.Close(ctx))
	s2 := startServer(t, root)
	tag2, err := name.NewTag(s2.Addr()+"/team/app:v1", name.Insecure)
	require.NoError(t, err)
	desc, err = remote.Head(tag2)
	require.NoError(t, err)
	require.Equal(t, want, desc.Digest)

	// Delete by digest; the manifest is gone.
	require.NoError(t, remote.Delete(tag2.Context().Digest(want.String())))
	_, err = remote.Head(tag2.Context().Digest(want.String()))
	require.Error(t, err)
}

func TestServerRefusesTakenAddress(t *testing.T) {
	s := startServer(t, t.TempDir())
	other, err := NewServer(context.Background(), t.TempDir())
	require.NoError(t, err)
	err = other.Start(s.Addr())
	require.ErrorContains(t, err, "taken by another program")
}

func TestPingUnreachable(t *testing.T) {
	err := Ping(context.Background(), "127.0.0.1:1", true)
	require.ErrorContains(t, err, "not reachable")
}

func TestMain(m *testing.M) {
	// The registry logs every request at info level.
	logrus.SetLevel(logrus.WarnLevel)
	os.Exit(m.Run())
}
