package builder

import (
	"context"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// Validation reads the images through a store that fetches a base
// layer from the registry only when BuildKit asks for it: the first
// validation on a base BuildKit has never seen fetches its layers, a
// second one of another image on the same base (an incremental build)
// fetches none, and writes nothing of it to disk. Both run the program
// in the image and read what it printed; a program that fails is
// reported as failed.
func TestValidationFetchesBaseLayersOnce(t *testing.T) {
	e := testenv.Start(t)
	bases := e.Bases(t)
	ctx := context.Background()

	counter := &blobCounter{next: http.DefaultTransport, bytes: map[string]int64{}}
	rc, err := registry.NewClient(e.Config, registry.WithTransport(counter))
	require.NoError(t, err)
	b := bases["base/bookworm"]
	plat := platform{name: "linux/amd64", arch: "amd64", oci: v1.Platform{OS: "linux", Architecture: "amd64"}}
	baseImg, _, err := base.PlatformImage(ctx, rc, b.Tag.Context().Digest(b.Digest.String()), plat.oci)
	require.NoError(t, err)
	baseLayers, err := baseImg.Layers()
	require.NoError(t, err)
	var baseSize int64
	isBase := map[string]bool{}
	for _, l := range baseLayers {
		d, err := l.Digest()
		require.NoError(t, err)
		n, err := l.Size()
		require.NoError(t, err)
		isBase[d.String()] = true
		baseSize += n
	}
	counter.take()

	bk, err := Connect(ctx, e.Config)
	require.NoError(t, err)
	defer bk.Close()
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	run := &buildRun{Builder: &Builder{progress: Progress{Out: io.Discard, Mode: "quiet"}}, log: log, bk: bk, work: t.TempDir()}
	// layersRead are the layers BuildKit read through the session, as
	// runChecks logs them.
	layersRead := func() []string {
		for _, e := range hook.AllEntries() {
			if l, ok := e.Data["layers"].([]string); ok {
				hook.Reset()
				return l
			}
		}
		t.Fatal("runChecks did not log the layers BuildKit read")
		return nil
	}
	layerDigest := func(img v1.Image) string {
		ls, err := img.Layers()
		require.NoError(t, err)
		d, err := ls[len(ls)-1].Digest()
		require.NoError(t, err)
		return d.String()
	}

	// image is the base with /hello holding msg, in a layer written as
	// Assemble writes the images' (a file in the work directory).
	image := func(msg string) v1.Image {
		src := filepath.Join(t.TempDir(), "hello")
		require.NoError(t, os.WriteFile(src, []byte(msg), 0o644))
		img, _, err := Layer(recipes.Image{Name: "hello", Files: []recipes.File{{From: "build:hello", To: "/hello"}}}, baseImg,
			func(recipes.File) (string, error) { return src, nil }, filepath.Join(run.work, msg+".tar.gz"), v1.History{Created: v1.Time{Time: time.Unix(0, 0)}})
		require.NoError(t, err)
		return img
	}
	newCheck := func(img v1.Image, args ...string) *check {
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		return &check{image: "hello", platform: plat, img: img, cf: cf, args: args}
	}

	img := image("first")
	first := newCheck(img, "/bin/cat", "/hello")
	n, err := run.runChecks(ctx, []*check{first})
	require.NoError(t, err)
	require.NoError(t, first.err)
	assert.Equal(t, "first", string(first.stdout))
	fetched := counter.take()
	var fromBase int64
	for d, n := range fetched {
		if isBase[d] {
			fromBase += n
		}
	}
	assert.Equal(t, baseSize, fromBase, "BuildKit had never seen the base: its layers were fetched once (%v)", fetched)
	assert.Equal(t, baseSize, n, "what runChecks says it fetched: the base layers, not the one on disk")
	assert.ElementsMatch(t, append(slices.Collect(maps.Keys(isBase)), layerDigest(img)), layersRead(), "BuildKit read every layer")

	img = image("second")
	second := newCheck(img, "/bin/cat", "/hello")
	failing := newCheck(img, "/bin/sh", "-c", "echo broken >&2; exit 3")
	n, err = run.runChecks(ctx, []*check{second, failing})
	require.NoError(t, err)
	assert.Zero(t, n, "nothing was fetched into the store")
	assert.Equal(t, []string{layerDigest(img)}, layersRead(), "BuildKit read the new layer only")
	require.NoError(t, second.err)
	assert.Equal(t, "second", string(second.stdout))
	assert.Error(t, failing.err, "a program that fails in the image fails its check")
	assert.Contains(t, string(failing.stderr), "broken")
	for d, n := range counter.take() {
		assert.False(t, isBase[d], "the second validation fetched the base layer %s (%d bytes) again", d, n)
	}
	_, err = os.Stat(filepath.Join(run.work, "validate"))
	assert.True(t, os.IsNotExist(err), "the validation's store is removed: %v", err)
}

// blobCounter counts the bytes of blobs read from the registry, by
// digest.
type blobCounter struct {
	next  http.RoundTripper
	mu    sync.Mutex
	bytes map[string]int64
}

func (c *blobCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet {
		return resp, err
	}
	if _, d, ok := strings.Cut(req.URL.Path, "/blobs/"); ok && strings.HasPrefix(d, "sha256:") {
		resp.Body = &countedBody{ReadCloser: resp.Body, add: func(n int) {
			c.mu.Lock()
			c.bytes[d] += int64(n)
			c.mu.Unlock()
		}}
	}
	return resp, nil
}

// take is what was read since the last take.
func (c *blobCounter) take() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.bytes
	c.bytes = map[string]int64{}
	return out
}

type countedBody struct {
	io.ReadCloser
	add func(int)
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.add(n)
	return n, err
}
