package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder/pool"
	"github.com/sailmaker/sailmaker/config"
)

// fakeFleet answers the pool's probes by worker name: up with the pinned
// version unless a test says a worker is down.
type fakeFleet struct {
	mu   sync.Mutex
	down map[string]bool
}

func (f *fakeFleet) probe(_ context.Context, w config.WorkerConfig, _ *client.Client) (pool.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[w.Name] {
		return pool.Info{}, errors.New("connection refused")
	}
	return pool.Info{Version: pool.PinnedVersion(), Platforms: []string{"linux/amd64"}}, nil
}

func (f *fakeFleet) setDown(name string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[name] = down
}

// withPool runs the service on a pool of fake workers bk-0..bk-(n-1), one
// slot each.
func withPool(t *testing.T, f *fakeFleet, n int) envOption {
	return func(c *config.Config, o *Options) {
		var ws []config.WorkerConfig
		one := 1
		for i := 0; i < n; i++ {
			ws = append(ws, config.WorkerConfig{Name: fmt.Sprintf("bk-%d", i), Address: fmt.Sprintf("unix:///nonexistent/bk-%d.sock", i), Slots: &one})
		}
		p, err := pool.New(pool.Options{Workers: ws, Probe: f.probe, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		o.Pool = p
	}
}

func (e *testEnv) submitTag(tag string) *Build { return e.submitTagAs("", tag) }

func (e *testEnv) submitTagAs(token, tag string) *Build {
	e.t.Helper()
	r := e.do("POST", "/v1/builds", token, map[string]any{"recipe": fixtureRecipe(e.t, tag)})
	require.Equal(e.t, http.StatusAccepted, r.status, string(r.body))
	return r.build(e.t)
}

// Builds of one recipe line go to one worker; another line may go
// elsewhere; all run at once up to the pool's slots; the worker is on the
// build and in the metrics.
func TestPoolRoutesByLine(t *testing.T) {
	f := &fakeFleet{down: map[string]bool{}}
	e := newEnv(t, withPool(t, f, 3))
	e.run.finish() // builds end as soon as they start
	workers := map[string]string{}
	var mu sync.Mutex
	e.run.fn = func(ctx context.Context, j Job) (*api.Result, error) {
		mu.Lock()
		workers[j.Build.ID] = j.Worker
		mu.Unlock()
		return fakeResult(j.Recipe), nil
	}
	line := func(tag string) string {
		return pool.LineOf("file:///srv/git/fixture.git", tag).String()
	}
	want10 := e.svc.pool.Rank(line("1.0.0"))[0]
	want11 := e.svc.pool.Rank(line("1.1.0"))[0]
	for _, tag := range []string{"1.0.0", "1.1.0", "1.0.1", "1.1.1", "1.0.2", "1.1.2"} {
		b := e.submitTag(tag)
		done := e.waitState(b.ID, StateSucceeded)
		want := want10
		if tag[:3] == "1.1" {
			want = want11
		}
		assert.Equal(t, want, done.Worker, "build of %s", tag)
		assert.Equal(t, want, workers[b.ID], "the build ran with the worker's client")
	}

	r := e.do("GET", "/v1/workers", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var ws WorkersResponse
	r.json(t, &ws)
	assert.Equal(t, 3, ws.Capacity)
	assert.Equal(t, pool.PinnedVersion(), ws.BuildKitVersion)
	runs := 0
	for _, w := range ws.Workers {
		assert.Equal(t, pool.StateUp, w.State)
		runs += w.BuildsRun
	}
	assert.Equal(t, 6, runs)
	m := string(e.do("GET", "/metrics", "", nil).body)
	assert.Contains(t, m, fmt.Sprintf(`sailmaker_build_attempts_by_worker_total{worker=%q} 3`, want10))
	assert.Contains(t, m, `sailmaker_worker_up{worker="bk-0"} 1`)
	assert.Contains(t, m, `sailmaker_worker_slots{worker="bk-2"} 1`)
}

// Builds run at once up to the sum of the slots; more wait in the queue.
func TestPoolRunsUpToItsSlots(t *testing.T) {
	f := &fakeFleet{down: map[string]bool{}}
	e := newEnv(t, withPool(t, f, 2))
	var ids []string
	for _, tag := range []string{"1.0.0", "1.0.1", "1.0.2"} {
		ids = append(ids, e.submitTag(tag).ID)
	}
	got := map[string]bool{e.run.waitStarted(t): true, e.run.waitStarted(t): true}
	select {
	case id := <-e.run.started:
		t.Fatalf("a third build (%s) started with two slots", id)
	case <-time.After(300 * time.Millisecond):
	}
	var third string
	for _, id := range ids {
		if !got[id] {
			third = id
		}
	}
	assert.Equal(t, StateQueued, e.waitState(third, StateQueued).State)
	b0, _ := e.svc.db.get(context.Background(), ids[0])
	b1, _ := e.svc.db.get(context.Background(), ids[1])
	assert.NotEqual(t, b0.Worker, b1.Worker, "the line's worker was busy: the next by its ranking took the second build")
	e.run.finish()
	for _, id := range ids {
		e.waitState(id, StateSucceeded)
	}
}

// A worker that goes away mid-build: the attempt is an interruption
// naming it, the build is queued again and succeeds on another worker;
// the worker is probed until it answers and then gets its line back.
func TestPoolWorkerLostMidBuild(t *testing.T) {
	f := &fakeFleet{down: map[string]bool{}}
	e := newEnv(t, withPool(t, f, 3))
	e.run.finish()
	first := e.svc.pool.Rank(pool.LineOf("file:///srv/git/fixture.git", "1.0.0").String())[0]
	var once sync.Once
	e.run.fn = func(ctx context.Context, j Job) (*api.Result, error) {
		lost := false
		once.Do(func() {
			lost = true
			f.setDown(j.Worker, true) // kill -9
		})
		if lost {
			return nil, fmt.Errorf("solving: %w", status.Error(codes.Unavailable, "error reading from server: EOF"))
		}
		return fakeResult(j.Recipe), nil
	}
	b := e.submitTag("1.0.0")
	done := e.waitState(b.ID, StateSucceeded)
	assert.Equal(t, 2, done.Attempts)
	require.Len(t, done.Interruptions, 1)
	in := done.Interruptions[0]
	assert.Equal(t, first, in.Worker)
	assert.False(t, in.Graceful, "a lost worker uses up a retry")
	assert.Contains(t, in.Reason, "interrupted: worker "+first+" (unix:///nonexistent/"+first+".sock) was lost during the build")
	assert.NotEqual(t, first, done.Worker, "the retry ran elsewhere")
	log := string(e.do("GET", "/v1/builds/"+b.ID+"/log?follow=false", "", nil).body)
	assert.Contains(t, log, "queued again: it runs on another worker")
	assert.Contains(t, log, "attempt 2 runs on worker "+done.Worker)

	st, _ := e.svc.pool.Worker(first)
	assert.Equal(t, pool.StateDown, st.State)
	assert.Equal(t, 1, st.BuildsLost)
	f.setDown(first, false)
	require.Eventually(t, func() bool { s, _ := e.svc.pool.Worker(first); return s.State == pool.StateUp }, 5*time.Second, 20*time.Millisecond)
	again := e.waitState(e.submitTag("1.0.1").ID, StateSucceeded)
	assert.Equal(t, first, again.Worker, "back up, the worker gets its line again")
}

// With no retries left, a lost worker fails the build, saying so.
func TestPoolWorkerLostNoRetries(t *testing.T) {
	f := &fakeFleet{down: map[string]bool{}}
	e := newEnv(t, withPool(t, f, 2), func(c *config.Config, _ *Options) { zero := 0; c.Server.Retries = &zero })
	e.run.finish()
	e.run.fn = func(ctx context.Context, j Job) (*api.Result, error) {
		f.setDown(j.Worker, true)
		return nil, errors.New("rpc error: code = Unavailable desc = connection reset by peer")
	}
	b := e.waitState(e.submitTag("1.0.0").ID, StateFailed)
	assert.Regexp(t, `^interrupted: worker bk-\d \(unix:///nonexistent/bk-\d\.sock\) was lost during the build: .* \(during building\) \(attempt 1; retries: 0\)$`, b.Error)
}

func TestWorkersDrainAPI(t *testing.T) {
	f := &fakeFleet{down: map[string]bool{}}
	admin, auditor := "smk_admin", "smk_auditor"
	e := newEnv(t, withPool(t, f, 2), withTokens(map[string]string{admin: config.RoleAdmin, auditor: config.RoleAuditor}))
	line := pool.LineOf("file:///srv/git/fixture.git", "1.0.0").String()
	first := e.svc.pool.Rank(line)[0]

	assert.Equal(t, http.StatusForbidden, e.do("POST", "/v1/workers/"+first+"/drain", auditor, nil).status)
	assert.Equal(t, http.StatusUnauthorized, e.do("GET", "/v1/workers", "", nil).status)
	assert.Equal(t, http.StatusOK, e.do("GET", "/v1/workers", auditor, nil).status)
	r := e.do("POST", "/v1/workers/nope/drain", admin, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "not_found", r.errorCode(t))
	assert.Equal(t, http.StatusBadRequest, e.do("POST", "/v1/workers/"+first+"/drain?wait=forever", admin, nil).status)

	// A build runs on the line's worker; the drain waits for it.
	b := e.submitTagAs(admin, "1.0.0")
	e.run.waitStarted(t)
	go func() { time.Sleep(200 * time.Millisecond); e.run.finish() }()
	start := time.Now()
	r = e.do("POST", "/v1/workers/"+first+"/drain?wait=10s", admin, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var st pool.Status
	require.NoError(t, json.Unmarshal(r.body, &st))
	assert.True(t, st.Draining)
	assert.Equal(t, 0, st.InUse)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "the answer came once the build had ended")
	assert.Equal(t, first, e.waitState(b.ID, StateSucceeded).Worker)

	next := e.waitState(e.submitTagAs(admin, "1.0.1").ID, StateSucceeded)
	assert.NotEqual(t, first, next.Worker, "no new builds on a draining worker")
	require.Equal(t, http.StatusOK, e.do("POST", "/v1/workers/"+first+"/drain?undo=true", admin, nil).status)
	assert.Equal(t, first, e.waitState(e.submitTagAs(admin, "1.0.2").ID, StateSucceeded).Worker)
	assert.Contains(t, e.logs.String(), "worker drain")
}
