package faultproxy_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/faultproxy"
	"github.com/sailmaker/sailmaker/internal/testenv"
)

func TestClassify(t *testing.T) {
	req := func(method, path string) *http.Request {
		r, err := http.NewRequest(method, "http://x"+path, nil)
		require.NoError(t, err)
		return r
	}
	d := "sha256:" + strings.Repeat("a", 64)
	for _, c := range []struct {
		method, path, body string
		repo               string
		want               faultproxy.Target
	}{
		{"POST", "/v2/mx/c1/pilot/blobs/uploads/", "", "mx/c1/pilot", faultproxy.BlobUpload},
		{"PATCH", "/v2/mx/c1/pilot/blobs/uploads/3f1e", "", "mx/c1/pilot", faultproxy.BlobUpload},
		{"PUT", "/v2/mx/c1/pilot/blobs/uploads/3f1e?digest=" + d, "", "mx/c1/pilot", faultproxy.BlobUpload},
		{"HEAD", "/v2/mx/c1/pilot/blobs/" + d, "", "mx/c1/pilot", faultproxy.Other},
		{"PUT", "/v2/mx/c1/pilot/manifests/" + d, `{"schemaVersion":2}`, "mx/c1/pilot", faultproxy.ManifestByDigest},
		{"PUT", "/v2/mx/c1/pilot/manifests/" + d, `{"schemaVersion":2,"subject":{"digest":"` + d + `"}}`, "mx/c1/pilot", faultproxy.Attachment},
		{"PUT", "/v2/mx/c1/pilot/manifests/sha256-" + strings.Repeat("b", 64) + ".sig", "{}", "mx/c1/pilot", faultproxy.Attachment},
		{"PUT", "/v2/mx/c1/pilot/manifests/1.0.0", "{}", "mx/c1/pilot", faultproxy.TagPut},
		{"GET", "/v2/mx/c1/pilot/manifests/1.0.0", "", "mx/c1/pilot", faultproxy.Other},
	} {
		repo, got := faultproxy.Classify(req(c.method, c.path), []byte(c.body))
		assert.Equal(t, c.want, got, "%s %s", c.method, c.path)
		assert.Equal(t, c.repo, repo, "%s %s", c.method, c.path)
	}
}

// The faults as go-containerregistry sees them: a burst longer than its
// retries fails the push, a dropped answer to a tag PUT leaves the tag
// written, a delayed tag PUT lands after the client gave up.
func TestFaults(t *testing.T) {
	e := testenv.Registry(t)
	p, err := faultproxy.New(e.Config.Registry.Address)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	ctx := context.Background()
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	ref := func(repo, tag string) name.Tag {
		tg, err := name.NewTag(p.Addr()+"/"+repo+":"+tag, name.Insecure)
		require.NoError(t, err)
		return tg
	}
	direct := func(repo, tag string) bool {
		tg, err := name.NewTag(e.Config.Registry.Address+"/"+repo+":"+tag, name.Insecure)
		require.NoError(t, err)
		_, err = remote.Head(tg)
		return err == nil
	}

	a := p.Arm(faultproxy.Rule{Repo: "x/burst", Target: faultproxy.BlobUpload, Fault: faultproxy.Burst503, Count: 10})
	err = remote.Write(ref("x/burst", "1"), img, remote.WithContext(ctx))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "UNAVAILABLE")
	assert.GreaterOrEqual(t, a.Hits(), 2)
	assert.False(t, direct("x/burst", "1"))

	require.NoError(t, remote.Write(ref("x/drop", "1"), img))
	d := p.Arm(faultproxy.Rule{Repo: "x/drop", Target: faultproxy.TagPut, Fault: faultproxy.Drop, Count: 1})
	err = remote.Tag(ref("x/drop", "2"), img, remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	require.Error(t, err, "the answer was dropped")
	assert.Equal(t, 1, d.Hits())
	assert.True(t, direct("x/drop", "2"), "the registry took the tag all the same")

	require.NoError(t, remote.Write(ref("x/late", "1"), img))
	l := p.Arm(faultproxy.Rule{Repo: "x/late", Target: faultproxy.TagPut, Fault: faultproxy.Delay, Delay: 2 * time.Second, Gate: true})
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- remote.Tag(ref("x/late", "2"), img, remote.WithContext(cctx)) }()
	<-l.Hit()
	cancel()
	require.Error(t, <-errc)
	assert.False(t, direct("x/late", "2"), "held at the gate")
	l.Release()
	require.NoError(t, p.WaitIdle("x/late", 10*time.Second))
	assert.True(t, direct("x/late", "2"), "the delayed request landed after the client gave up")
	assert.Equal(t, 2, p.Count("x/late", faultproxy.TagPut))
}
