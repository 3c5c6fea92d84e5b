package service_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/service"
)

// Finding 5 of issue 16: slow clients held connections. The webhook read
// the whole body before checking anything, and nothing bounded how long a
// body could take: 20 connections sending a byte every 20 s were all open
// after 160 s. A real `sailmaker serve` now closes a connection whose
// headers take longer than service.ReadHeaderTimeout, whose body takes
// longer than service.BodyTimeout (answering 408), or that sits idle
// longer than service.IdleTimeout, while a followed build log streams on
// past the server's ReadTimeout.
func TestServeCutsOffSlowClients(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	state := t.TempDir()
	writeConfig(t, state, map[string]any{
		"registry": map[string]any{"address": freeAddr(t)},
		// No buildkitd: builds stay queued, which is all this test needs.
		"buildkit": map[string]any{"address": "unix://" + state + "/no-buildkitd.sock"},
	})
	p := startServe(t, state, freeAddr(t), "SAILMAKER_WEBHOOK_SECRET=slow-secret")
	addr := strings.TrimPrefix(p.url, "http://")
	a := api{t, p.url}

	// A build that stays queued, whose log a client follows.
	status, body := a.do("POST", "/v1/builds", "", []byte(`{"recipe": "istio@1.24.2", "envoySHA256": "`+strings.Repeat("a", 64)+`"}`))
	require.Equal(t, http.StatusAccepted, status, string(body))
	var queued service.Build
	require.NoError(t, json.Unmarshal(body, &queued))

	sig := "sha256=" + strings.Repeat("0", 64)
	kinds := []struct {
		name   string
		limit  time.Duration
		prefix string // sent at once
		drip   string // then one byte a second
		want   string // the answer's status line, if any
		stays  bool   // must still be open after limit
	}{
		{name: "headers", limit: service.ReadHeaderTimeout, prefix: "GET /healthz HTTP/1.1\r\n", drip: "Host: x\r\nX-Slow: " + strings.Repeat("a", 100)},
		{name: "webhook body", limit: service.BodyTimeout, want: "HTTP/1.1 408",
			prefix: "POST /v1/hooks/upstream-tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n" +
				service.SignatureHeader + ": " + sig + "\r\n" + service.SailmakerDeliveryHeader + ": slow-1\r\n\r\n",
			drip: `{"repo": "` + strings.Repeat("r", 1000)},
		{name: "build body", limit: service.BodyTimeout, want: "HTTP/1.1 408",
			prefix: "POST /v1/builds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n",
			drip:   `{"recipe": "` + strings.Repeat("r", 1000)},
		{name: "idle", limit: service.IdleTimeout, want: "HTTP/1.1 200", prefix: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "followed log", limit: service.ReadTimeout + 5*time.Second, want: "HTTP/1.1 200", stays: true,
			prefix: "GET /v1/builds/" + queued.ID + "/log HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	const perKind = 5
	const slack = 6 * time.Second
	type result struct {
		kind   int
		closed time.Duration // 0: still open at the end
		first  string
	}
	results := make(chan result, len(kinds)*perKind)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(service.ReadTimeout + 2*slack)
	for k, kind := range kinds {
		for i := 0; i < perKind; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if !assert.NoError(t, err) {
					return
				}
				defer c.Close()
				opened := time.Now()
				_, _ = io.WriteString(c, kind.prefix)
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for j := 0; j < len(kind.drip); j++ {
						select {
						case <-stop:
							return
						case <-time.After(time.Second):
						}
						if _, err := c.Write([]byte{kind.drip[j]}); err != nil {
							return
						}
					}
				}()
				_ = c.SetReadDeadline(deadline)
				r := bufio.NewReader(c)
				line, _ := r.ReadString('\n')
				_, err = io.Copy(io.Discard, r)
				res := result{kind: k, first: strings.TrimSpace(line)}
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					res.closed = time.Since(opened)
				}
				results <- res
			}()
		}
	}
	// Meanwhile the service answers others.
	for time.Since(start) < 5*time.Second {
		status, _ := a.do("GET", "/healthz", "", nil)
		require.Equal(t, http.StatusOK, status)
		time.Sleep(time.Second)
	}
	wg.Wait()
	close(results)
	for res := range results {
		kind := kinds[res.kind]
		if kind.want != "" {
			assert.True(t, strings.HasPrefix(res.first, kind.want), "%s: answered %q, want %s", kind.name, res.first, kind.want)
		}
		if kind.stays {
			assert.Zero(t, res.closed, "%s: closed after %s, while it should stream on", kind.name, res.closed)
			continue
		}
		if assert.NotZero(t, res.closed, "%s: still open after %s (limit %s)", kind.name, time.Since(start).Round(time.Second), kind.limit) {
			assert.Less(t, res.closed, kind.limit+slack, "%s: closed after %s (limit %s)", kind.name, res.closed, kind.limit)
		}
	}
	t.Logf("%d slow connections of %d kinds, in %s", len(kinds)*perKind, len(kinds), time.Since(start).Round(time.Second))
}
