package service

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/store"
)

// Finding 4 of issue 16: /metrics labelled requests by their raw method,
// so 2,000 requests with 10 KB methods grew /metrics by 20 MB and the
// heap with it, until a restart. Only the methods HTTP defines and the
// API's routes are labels now; anything else is "other" / "unmatched".
func TestMetricsLabelsAreBounded(t *testing.T) {
	e := newEnv(t)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	method := func(i int) string { return fmt.Sprintf("M%05d", i) + strings.Repeat("X", 10<<10) }
	// Requests with methods of 10 KB, a few connections in parallel, each
	// request on a connection of its own (the server closes it after an
	// unknown method's answer anyway).
	send := func(from, to int) {
		var wg sync.WaitGroup
		work := make(chan int)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					c, err := net.Dial("tcp", addr)
					if !assert.NoError(t, err) {
						continue
					}
					path := []string{"/v1/builds", "/metrics", "/nowhere", "/v1/builds/x/cancel"}[i%4]
					fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method(i), path)
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if assert.NoError(t, err) {
						resp.Body.Close()
					}
					c.Close()
				}
			}()
		}
		for i := from; i < to; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	scrape := func() string {
		r := e.do("GET", "/metrics", "", nil)
		require.Equal(t, http.StatusOK, r.status)
		return string(r.body)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	send(0, 40) // every label the bogus requests make exists now
	before, heapBefore := scrape(), heap()
	send(40, 2040)
	after, heapAfter := scrape(), heap()

	// (The metrics text is not printed on failure: it may be megabytes.)
	has := func(text, want string) {
		t.Helper()
		assert.True(t, strings.Contains(text, want), "/metrics has %s", want)
	}
	assert.False(t, strings.Contains(after, "XXXXXXXX"), "a client's method is no label")
	assert.InDelta(t, len(before), len(after), 2048, "/metrics grew from %d to %d bytes", len(before), len(after))
	grew := int64(heapAfter) - int64(heapBefore)
	assert.Less(t, grew, int64(4<<20), "the heap grew by %d bytes after 2,000 requests with 10 KB methods", grew)
	has(after, `sailmaker_http_requests_total{code="405",method="other"}`)
	// What an operator graphs: durations by route and status class.
	has(after, `sailmaker_http_request_duration_seconds_count{class="2xx",method="GET",route="/metrics"}`)
	has(after, `sailmaker_http_request_duration_seconds_count{class="4xx",method="other",route="unmatched"}`)
	has(after, `sailmaker_http_request_duration_seconds_bucket{class="2xx",method="GET",route="/metrics",le="0.005"}`)
	e.do("GET", "/v1/builds/nope", "", nil)
	has(scrape(), `sailmaker_http_request_duration_seconds_count{class="4xx",method="GET",route="/v1/builds/{id}"} 1`)
}

// Finding 8 of issue 16: two cancels at once (a maintainer's and an
// admin's) both got 202, and the record said cancelledBy admin but
// error "cancelled by maintainer". The first cancel wins (202); the
// other gets the build's final state (200), and the record's
// cancelledBy and error name the same actor.
func TestTwoCancelsAtOnce(t *testing.T) {
	maint, admin := "smk_maintainer_token", "smk_admin_token"
	e := newEnv(t, withTokens(map[string]string{maint: config.RoleMaintainer, admin: config.RoleAdmin}),
		func(c *config.Config, _ *Options) { c.Server.Concurrency = 4 })
	// A build that takes a moment to stop once cancelled, as a BuildKit
	// solve does.
	e.run.fn = func(ctx context.Context, j Job) (*api.Result, error) {
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond)
		return nil, fmt.Errorf("solve: %w", ctx.Err())
	}
	for round := 0; round < 8; round++ {
		b := e.do("POST", "/v1/builds", maint, map[string]any{"recipe": "istio@1.24.2", "envoySHA256": fmt.Sprintf("%064x", round)}).build(t)
		require.Equal(t, b.ID, e.run.waitStarted(t))
		var wg sync.WaitGroup
		answers := map[string]response{}
		var mu sync.Mutex
		for _, tok := range []string{maint, admin} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.do("POST", "/v1/builds/"+b.ID+"/cancel", tok, nil)
				mu.Lock()
				answers[tok] = r
				mu.Unlock()
			}()
		}
		wg.Wait()
		var won, lost []string
		for tok, r := range answers {
			switch r.status {
			case http.StatusAccepted:
				won = append(won, tok)
			case http.StatusOK:
				lost = append(lost, tok)
			default:
				t.Fatalf("cancel answered %d: %s", r.status, r.body)
			}
			got := r.build(t)
			assert.Equal(t, StateCancelled, got.State, "each caller sees the final state")
		}
		require.Len(t, won, 1, "one cancel wins")
		require.Len(t, lost, 1, "the other gets the final state")
		rec, err := e.svc.db.get(context.Background(), b.ID)
		require.NoError(t, err)
		winner := map[string]string{maint: "maintainer-token", admin: "admin-token"}[won[0]]
		assert.Equal(t, winner, rec.CancelledBy)
		assert.Equal(t, "cancelled by "+rec.CancelledBy, rec.Error, "cancelledBy and error agree")
		assert.Equal(t, rec.CancelledBy, answers[lost[0]].build(t).CancelledBy)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory (as root, as
// `make test` runs) and unmounts it when the test ends.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)), "mounting a tmpfs needs root (make test runs as root)")
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.True(t, store.DiskFull(err), "%v", err)
			return p
		}
	}
}

// Finding 2 of issue 16, in-process (TestServeDiskFull runs a real
// service): when the state directory's disk is full and even the reserve
// is gone, the end of a build is kept in memory: the build is in its
// final state for every reader, cancel answers that it has ended, the
// same request queues a new build rather than joining the ended one,
// /readyz says the disk is full, and once there is room the record is
// written and the queue moves again.
func TestDiskFullKeepsTheEndInMemory(t *testing.T) {
	testenv.Integration(t)
	dir := mountTmpfs(t, 3*ReserveBytes)
	cfg := config.Default()
	cfg.StateDir = dir
	cfg.Registry.Root = dir + "/registry"
	st, err := store.OpenDir(context.Background(), cfg.StateDir)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := startEnv(t, cfg, st, func(_ *config.Config, o *Options) { o.Ready = map[string]func(context.Context) error{} })
	require.FileExists(t, filepath.Join(dir, ReserveFile))

	b := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e.run.waitStarted(t)
	// Somebody else took the reserve too, and filled the disk.
	require.NoError(t, os.Remove(filepath.Join(dir, ReserveFile)))
	filler := fill(t, dir)
	e.run.finish()

	got := e.waitState(b.ID, StateSucceeded)
	assert.NotNil(t, got.Finished)
	r := e.do("GET", "/v1/builds/"+b.ID, "", nil)
	assert.Equal(t, StateSucceeded, r.build(t).State, "the API serves the record kept in memory")
	var list struct{ Builds []Build }
	e.do("GET", "/v1/builds?state=succeeded", "", nil).json(t, &list)
	require.Len(t, list.Builds, 1)
	assert.Equal(t, b.ID, list.Builds[0].ID)
	assert.Equal(t, http.StatusConflict, e.do("POST", "/v1/builds/"+b.ID+"/cancel", "", nil).status)
	assert.Contains(t, e.logs.String(), "the state directory's disk is full")
	assert.Contains(t, e.logs.String(), "kept in memory")

	var ready struct {
		Status string
		Checks map[string]string
	}
	rr := e.do("GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, rr.status)
	rr.json(t, &ready)
	assert.Contains(t, ready.Checks["stateDir"], "the state directory's disk is full")

	// The same request again is not joined to the ended build: it cannot
	// be queued while the disk is full, and says so.
	again := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"})
	assert.Equal(t, http.StatusInsufficientStorage, again.status, string(again.body))
	assert.Equal(t, "disk_full", again.errorCode(t))

	// Room again: the record is written, the reserve made again, the
	// service ready, and builds run.
	require.NoError(t, os.Remove(filler))
	deadline := time.Now().Add(15 * time.Second)
	for e.do("GET", "/readyz", "", nil).status != http.StatusOK {
		require.True(t, time.Now().Before(deadline), "not ready again once there is room")
		time.Sleep(100 * time.Millisecond)
	}
	require.Empty(t, e.svc.db.kept(), "the record kept in memory is written")
	stored, err := e.svc.db.get(context.Background(), b.ID)
	require.NoError(t, err)
	assert.Equal(t, StateSucceeded, stored.State)
	require.FileExists(t, filepath.Join(dir, ReserveFile))
	next := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"})
	require.Equal(t, http.StatusAccepted, next.status, string(next.body))
	e.waitState(next.build(t).ID, StateSucceeded)
}
