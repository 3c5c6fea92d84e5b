package service

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/config"
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
