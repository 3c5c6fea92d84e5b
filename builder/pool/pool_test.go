package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sailmaker/sailmaker/config"
)

// fakeWorkers answers probes per worker (by the client's identity) as a
// test says: a version, or an error.
type fakeWorkers struct {
	mu      sync.Mutex
	answers map[*client.Client]func() (Info, error)
	probes  map[*client.Client]int
}

func (f *fakeWorkers) probe(_ context.Context, _ config.WorkerConfig, c *client.Client) (Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes[c]++
	if a, ok := f.answers[c]; ok {
		return a()
	}
	return Info{}, errors.New("connection refused")
}

func (f *fakeWorkers) set(p *Pool, name string, a func() (Info, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[p.byName[name].client] = a
}

func (f *fakeWorkers) count(p *Pool, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probes[p.byName[name].client]
}

func up(v string) func() (Info, error) {
	return func() (Info, error) { return Info{Version: v, Platforms: []string{"linux/amd64"}}, nil }
}

func down() (Info, error) {
	return Info{}, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func slots(n int) *int { return &n }

func newTestPool(t *testing.T, names ...string) (*Pool, *fakeWorkers) {
	t.Helper()
	f := &fakeWorkers{answers: map[*client.Client]func() (Info, error){}, probes: map[*client.Client]int{}}
	var ws []config.WorkerConfig
	for _, n := range names {
		ws = append(ws, config.WorkerConfig{Name: n, Address: "unix:///nonexistent/" + n + ".sock", Slots: slots(1)})
	}
	p, err := New(Options{Workers: ws, Version: "v0.33.1", Probe: f.probe, Interval: time.Hour, MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	for _, n := range names {
		f.set(p, n, up("v0.33.1"))
	}
	return p, f
}

func TestPinnedVersionIsTheClientModule(t *testing.T) {
	// go.mod pins github.com/moby/buildkit; the Makefile checks that the
	// daemon built into bin/ is the same version.
	assert.Regexp(t, `^v0\.\d+\.\d+`, PinnedVersion())
}

func TestStickyRoutingAndFallback(t *testing.T) {
	p, f := newTestPool(t, "bk-0", "bk-1", "bk-2")
	p.Start(context.Background())
	require.Equal(t, 3, p.Free())

	line := LineOf("https://github.com/istio/istio.git", "1.24.2").String()
	rank := p.Rank(line)
	require.Len(t, rank, 3)
	assert.Equal(t, rank, p.Rank(LineOf("https://github.com/istio/istio", "1.24.3").String()), "a patch release is the same line")

	// The same line goes to the same worker, release after release.
	for i := 0; i < 5; i++ {
		l, ok := p.TryAcquire(line)
		require.True(t, ok)
		assert.Equal(t, rank[0], l.Name())
		assert.Equal(t, 0, l.Rank())
		assert.Nil(t, l.Release(context.Background(), nil))
	}
	// Busy: the next in the line's ranking takes it.
	first, _ := p.TryAcquire(line)
	second, ok := p.TryAcquire(line)
	require.True(t, ok)
	assert.Equal(t, rank[1], second.Name())
	assert.Equal(t, 1, second.Rank())
	third, _ := p.TryAcquire(line)
	assert.Equal(t, rank[2], third.Name())
	_, ok = p.TryAcquire(line)
	assert.False(t, ok, "every slot is taken")
	assert.Equal(t, 0, p.Free())
	for _, l := range []*Lease{first, second, third} {
		l.Release(context.Background(), nil)
	}

	// Down: skipped until it answers again.
	f.set(p, rank[0], down)
	p.ProbeNow(context.Background())
	st, _ := p.Worker(rank[0])
	assert.Equal(t, StateDown, st.State)
	assert.Contains(t, st.LastError, "does not answer")
	l, _ := p.TryAcquire(line)
	assert.Equal(t, rank[1], l.Name())
	l.Release(context.Background(), nil)
	f.set(p, rank[0], up("v0.33.1"))
	require.Eventually(t, func() bool { s, _ := p.Worker(rank[0]); return s.State == StateUp }, 5*time.Second, 10*time.Millisecond,
		"a down worker is probed again with backoff and taken back")
	l, _ = p.TryAcquire(line)
	assert.Equal(t, rank[0], l.Name(), "back, it gets its line again")
	l.Release(context.Background(), nil)

	st, _ = p.Worker(rank[0])
	assert.Equal(t, 7, st.BuildsRun)
}

// Rendezvous hashing: taking a worker out moves only the lines it was
// first for, and lines spread over the workers.
func TestRankingIsStableAndSpread(t *testing.T) {
	p3, _ := newTestPool(t, "bk-0", "bk-1", "bk-2")
	p2, _ := newTestPool(t, "bk-0", "bk-2")
	firsts := map[string]int{}
	for i := 0; i < 300; i++ {
		key := LineOf("https://github.com/istio/istio.git", fmt.Sprintf("1.%d.0", i)).String()
		a, b := p3.Rank(key)[0], p2.Rank(key)[0]
		firsts[a]++
		if a != "bk-1" {
			assert.Equal(t, a, b, "line %s moved though its worker stayed", key)
		}
	}
	for _, n := range []string{"bk-0", "bk-1", "bk-2"} {
		assert.Greater(t, firsts[n], 60, "worker %s is first for too few lines: %v", n, firsts)
	}
}

func TestVersionMismatchIsRefused(t *testing.T) {
	p, f := newTestPool(t, "bk-0", "bk-1")
	f.set(p, "bk-1", up("v0.32.0"))
	p.Start(context.Background())
	st, _ := p.Worker("bk-1")
	assert.Equal(t, StateRefused, st.State)
	assert.True(t, st.Reachable)
	assert.Equal(t, "v0.32.0", st.BuildKitVersion)
	assert.Equal(t, `worker bk-1 (unix:///nonexistent/bk-1.sock) runs BuildKit "v0.32.0"; sailmaker needs v0.33.1, the pinned version (BUILDKIT_VERSION in the Makefile): run the buildkitd that `+"`make tools`"+` builds there`, st.LastError)
	assert.Equal(t, 1, p.Free())
	for i := 0; i < 20; i++ {
		l, ok := p.TryAcquire(fmt.Sprint(i))
		require.True(t, ok)
		assert.Equal(t, "bk-0", l.Name())
		l.Release(context.Background(), nil)
	}
}

func TestTLSFailuresAreExplained(t *testing.T) {
	wc := config.WorkerConfig{Name: "bk-0", Address: "tcp://127.0.0.1:1234", CACert: "/certs/ca.pem", Cert: "/certs/client.pem", Key: "/certs/client-key.pem"}
	for _, c := range []struct{ err, want string }{
		{`rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: remote error: tls: unknown certificate authority"`,
			"worker bk-0 (tcp://127.0.0.1:1234) refused sailmaker's client certificate (tls: unknown certificate authority): the worker trusts another CA; make cert/key (/certs/client.pem) with the CA the worker was started with (--tlscacert), e.g. `sailmaker certs new`"},
		{`rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`,
			"worker bk-0 (tcp://127.0.0.1:1234) presented a certificate not signed by caCert (/certs/ca.pem): give the CA that signed the worker's certificate"},
		{`connection refused`, ""},
	} {
		assert.Equal(t, c.want, explainTLS(wc, errors.New(c.err)))
	}
}

func TestReleaseMarksALostWorkerDown(t *testing.T) {
	p, f := newTestPool(t, "bk-0", "bk-1")
	p.Start(context.Background())
	l, _ := p.TryAcquire("x")
	name := l.Name()

	// A build failure on a healthy worker is the build's.
	assert.Nil(t, l.Release(context.Background(), errors.New("make: *** [pilot] Error 1")))
	st, _ := p.Worker(name)
	assert.Equal(t, StateUp, st.State)
	assert.Equal(t, 1, st.BuildsRun)

	// The worker dies mid-build: the probe after the failure finds it gone.
	l, _ = p.TryAcquire("x")
	f.set(p, name, down)
	lost := l.Release(context.Background(), status.Error(codes.Unavailable, "error reading from server: EOF"))
	var le *LostError
	require.ErrorAs(t, lost, &le)
	assert.Equal(t, name, le.Worker)
	assert.Contains(t, lost.Error(), "worker "+name+" (unix:///nonexistent/"+name+".sock) was lost during the build")
	st, _ = p.Worker(name)
	assert.Equal(t, StateDown, st.State)
	assert.Equal(t, 1, st.BuildsLost)
	assert.Equal(t, 0, st.InUse)
	other, _ := p.TryAcquire("x")
	assert.NotEqual(t, name, other.Name(), "the next attempt goes elsewhere")
	other.Release(context.Background(), nil)

	// Probed with backoff: more than once while down, then back.
	require.Eventually(t, func() bool { return f.count(p, name) >= 4 }, 5*time.Second, 10*time.Millisecond)
	f.set(p, name, up("v0.33.1"))
	require.Eventually(t, func() bool { s, _ := p.Worker(name); return s.State == StateUp }, 5*time.Second, 10*time.Millisecond)
}

func TestDrain(t *testing.T) {
	p, _ := newTestPool(t, "bk-0", "bk-1")
	p.Start(context.Background())
	key := "line"
	first := p.Rank(key)[0]
	l, _ := p.TryAcquire(key)
	require.Equal(t, first, l.Name())
	st, err := p.Drain(first)
	require.NoError(t, err)
	assert.True(t, st.Draining)
	assert.Equal(t, 1, st.InUse)
	_, err = p.Drain("nope")
	require.ErrorIs(t, err, ErrUnknownWorker)

	other, ok := p.TryAcquire(key)
	require.True(t, ok)
	assert.NotEqual(t, first, other.Name(), "no new builds on a draining worker")
	other.Release(context.Background(), nil)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = p.WaitIdle(ctx, first)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "a build still runs there")
	go func() { time.Sleep(20 * time.Millisecond); l.Release(context.Background(), nil) }()
	st, err = p.WaitIdle(context.Background(), first)
	require.NoError(t, err)
	assert.Equal(t, 0, st.InUse)

	_, err = p.Undrain(first)
	require.NoError(t, err)
	l, _ = p.TryAcquire(key)
	assert.Equal(t, first, l.Name())
	l.Release(context.Background(), nil)
}

func TestAcquireWaitsForASlot(t *testing.T) {
	p, _ := newTestPool(t, "bk-0")
	p.Start(context.Background())
	l, _ := p.TryAcquire("a")
	got := make(chan *Lease)
	go func() {
		l2, err := p.Acquire(context.Background(), "b")
		if err != nil {
			panic(err)
		}
		got <- l2
	}()
	select {
	case <-got:
		t.Fatal("acquired a slot that was taken")
	case <-time.After(50 * time.Millisecond):
	}
	l.Release(context.Background(), nil)
	select {
	case l2 := <-got:
		assert.Equal(t, "bk-0", l2.Name())
	case <-time.After(5 * time.Second):
		t.Fatal("no slot after the release")
	}
}

func TestLineOf(t *testing.T) {
	for _, c := range []struct{ url, version, want string }{
		{"https://github.com/istio/istio.git", "1.24.2", "github.com/istio/istio@1.24"},
		{"https://GitHub.com/istio/istio/", "v1.24.3", "github.com/istio/istio@1.24"},
		{"git@github.com:istio/istio.git", "1.25.0", "github.com/istio/istio@1.25"},
		{"https://bot@github.com/istio/istio.git", "1.25.0", "github.com/istio/istio@1.25"},
		{"file:///srv/git/istio.git", "1.0.0", "srv/git/istio@1.0"},
		{"https://example.com/x.git", "nightly", "example.com/x@nightly"},
	} {
		assert.Equal(t, c.want, LineOf(c.url, c.version).String(), c.url)
	}
	l := LineOf("https://github.com/istio/istio.git", "1.24.2")
	assert.Regexp(t, `^istio-[0-9a-f]{8}$`, l.CacheRepository())
	assert.Equal(t, "1.24", l.CacheTag())
	assert.NotEqual(t, l.CacheRepository(), LineOf("https://example.com/fork/istio.git", "1.24.2").CacheRepository())
}

// A worker too busy to answer the probe in time is not lost: the build's
// failure is the build's.
func TestReleaseSlowWorkerIsNotLost(t *testing.T) {
	p, f := newTestPool(t, "bk-0")
	p.Start(context.Background())
	l, _ := p.TryAcquire("x")
	f.set(p, "bk-0", func() (Info, error) { return Info{}, fmt.Errorf("failed to call info: %w", context.DeadlineExceeded) })
	assert.Nil(t, l.Release(context.Background(), errors.New("make: *** [pilot] Error 1")))
	st, _ := p.Worker("bk-0")
	assert.Equal(t, 0, st.BuildsLost)
	assert.Equal(t, 1, st.BuildsRun)
}
