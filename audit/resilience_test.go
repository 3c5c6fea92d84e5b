package audit_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
)

// faults is a transport that delays requests, answers some with 503 (the
// first n attempts, or always) and counts what it sees.
type faults struct {
	inner http.RoundTripper
	// delay returns how long to hold a request.
	delay func(*http.Request) time.Duration
	// failures returns how many attempts of a request fail with 503
	// before it goes through (-1: all of them).
	failures func(*http.Request) int

	mu       sync.Mutex
	attempts map[string]int
	paths    []string

	inflight, maxInflight atomic.Int64
}

func (f *faults) RoundTrip(r *http.Request) (*http.Response, error) {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxInflight.Load()
		if n <= m || f.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	if f.attempts == nil {
		f.attempts = map[string]int{}
	}
	f.attempts[key]++
	attempt := f.attempts[key]
	f.paths = append(f.paths, key)
	f.mu.Unlock()
	if f.delay != nil {
		select {
		case <-time.After(f.delay(r)):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	if f.failures != nil {
		if n := f.failures(r); n < 0 || attempt <= n {
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("overloaded")), Request: r}, nil
		}
	}
	return f.inner.RoundTrip(r)
}

func (f *faults) count(pred func(string) bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.paths {
		if pred(p) {
			n++
		}
	}
	return n
}

func (f *faults) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = nil
}

var fastRetry = remote.Backoff{Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}

// A registry that answers slowly, with 503s that retries get past, and
// with 503s that do not stop: the answer has everything readable, and
// names what is not.
func TestPartialResults(t *testing.T) {
	w := newWorld(t)
	s := w.seed()
	mods := map[string]string{"istio.io/istio": "1.0.0"}
	debs := map[string]string{"libc6": "2.36-9+deb12u9"}
	for _, tag := range []string{"1", "2", "3"} {
		w.sailmakerImage(s, build{repo: "flaky/app", tag: tag, base: s.baseImg, commit: commit1}, mods, debs)
	}
	w.sailmakerImage(s, build{repo: "broken/app", tag: "1", base: s.baseImg, commit: commit1}, mods, debs)
	w.sailmakerImage(s, build{repo: "slow/app", tag: "1", base: s.baseImg, commit: commit1}, mods, debs)

	f := &faults{
		inner: remote.DefaultTransport,
		delay: func(r *http.Request) time.Duration {
			if strings.HasPrefix(r.URL.Path, "/v2/slow/app/manifests/") {
				return 2 * time.Second
			}
			return 3 * time.Millisecond
		},
		failures: func(r *http.Request) int {
			switch {
			case strings.HasPrefix(r.URL.Path, "/v2/flaky/"):
				return 2 // the third attempt goes through
			case strings.HasPrefix(r.URL.Path, "/v2/broken/app/manifests/"):
				return -1
			}
			return 0
		},
	}
	a := w.auditor(audit.WithTransport(f), audit.WithRetryBackoff(fastRetry), audit.WithImageTimeout(time.Second))
	ctx := context.Background()

	res, err := a.Images(ctx, audit.Filter{})
	require.NoError(t, err)
	imgs := byName(res.Images)
	for _, tag := range []string{"1", "2", "3"} {
		img, ok := imgs["flaky/app:"+tag]
		require.True(t, ok, "flaky/app:%s is read after retries", tag)
		assert.True(t, img.Provenance)
		assert.Equal(t, audit.SignatureValid, img.Signature)
	}
	assert.Contains(t, imgs, "demo/pilot:1.0.0")
	assert.NotContains(t, imgs, "broken/app:1")
	assert.NotContains(t, imgs, "slow/app:1")
	require.Len(t, res.Warnings, 2, "%v", res.Warnings)
	assert.Equal(t, w.reg()+"/broken/app:1", res.Warnings[0].Reference)
	assert.Contains(t, res.Warnings[0].Error, "503")
	assert.Equal(t, w.reg()+"/slow/app:1", res.Warnings[1].Reference)
	assert.Contains(t, res.Warnings[1].Error, "deadline")
	assert.Contains(t, res.Warnings.String(), "broken/app:1")
	// Persistent failures were retried, not given up on at once.
	assert.GreaterOrEqual(t, f.count(func(p string) bool { return strings.HasPrefix(p, "HEAD /v2/broken/app/manifests/1") }), 3)

	rep, err := a.Verify(ctx)
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Equal(t, []found{{"partial-result", "broken/app:1"}, {"partial-result", "slow/app:1"}}, findingSet(rep))
	assert.Len(t, rep.Warnings, 2)
	assert.Equal(t, 8, rep.Checked)

	// When the catalog itself cannot be read there is nothing to answer.
	f.failures = func(r *http.Request) int {
		if r.URL.Path == "/v2/_catalog" {
			return -1
		}
		return 0
	}
	_, err = a.Images(ctx, audit.Filter{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listing the repositories")
}

// Reads run concurrently, never more than the bound at once.
func TestConcurrencyBound(t *testing.T) {
	w := newWorld(t)
	for i := 0; i < 12; i++ {
		img, err := random.Image(32, 1)
		require.NoError(t, err)
		w.push("many/r"+string(rune('a'+i)), "1", img)
	}
	run := func(n int) int64 {
		f := &faults{inner: remote.DefaultTransport, delay: func(*http.Request) time.Duration { return 20 * time.Millisecond }}
		a := w.auditor(audit.WithTransport(f), audit.WithConcurrency(n))
		res, err := a.Images(context.Background(), audit.Filter{})
		require.NoError(t, err)
		require.Len(t, res.Images, 12)
		return f.maxInflight.Load()
	}
	assert.LessOrEqual(t, run(3), int64(3))
	assert.Greater(t, run(8), int64(3), "a higher bound reads more at once")
	_, err := audit.New(w.cfg, audit.WithConcurrency(0))
	assert.Error(t, err)
}

// Content by digest is read once: later queries, and other auditors sharing
// the cache directory, read only tags and attachment lists.
func TestDigestCache(t *testing.T) {
	w := newWorld(t)
	w.seed()
	dir := t.TempDir()
	f := &faults{inner: remote.DefaultTransport}
	byDigest := func(p string) bool {
		return strings.HasPrefix(p, "GET ") && (strings.Contains(p, "/blobs/") || strings.Contains(p, "/manifests/sha256:"))
	}
	a := w.auditor(audit.WithTransport(f), audit.WithCacheDir(dir))
	ctx := context.Background()
	first, err := a.Verify(ctx)
	require.NoError(t, err)
	require.True(t, first.OK())
	assert.Positive(t, f.count(byDigest))

	f.reset()
	again, err := a.Verify(ctx)
	require.NoError(t, err)
	assert.Equal(t, first.Findings, again.Findings)
	assert.Zero(t, f.count(byDigest), "nothing read by digest twice")
	assert.Positive(t, f.count(func(p string) bool { return strings.HasPrefix(p, "HEAD ") }), "tags are read afresh")

	// Another process: the disk cache serves it. (Signature verdicts are
	// remembered in memory only: a file in the cache must never make a
	// signature valid.)
	f.reset()
	b := w.auditor(audit.WithTransport(f), audit.WithCacheDir(dir), audit.WithSignatureVerifier(nil))
	res, err := b.Images(ctx, audit.Filter{})
	require.NoError(t, err)
	assert.Len(t, res.Images, 5)
	assert.Zero(t, f.count(byDigest))

	// A damaged cache file is a miss, never an answer.
	var files []string
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
		return err
	}))
	require.NotEmpty(t, files)
	for _, p := range files {
		require.NoError(t, os.WriteFile(p, []byte(`{"tampered":true}`), 0o644))
	}
	f.reset()
	c := w.auditor(audit.WithTransport(f), audit.WithCacheDir(dir))
	rep, err := c.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%v", rep.Findings)
	assert.Positive(t, f.count(byDigest), "read again from the registry")
}
