package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/config"
)

// The same recipe and options while a build is queued or running join that
// build; other options or a finished build make a new one. The build goes
// through its phases and records its images.
func TestSubmitCoalescesAndRuns(t *testing.T) {
	e := newEnv(t)
	first := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"})
	require.Equal(t, http.StatusAccepted, first.status, string(first.body))
	b := first.build(t)
	assert.Equal(t, "istio@1.24.2", b.Recipe)
	assert.Equal(t, SourceEmbedded, b.Source)
	assert.Equal(t, "/v1/builds/"+b.ID, first.header.Get("Location"))
	assert.Equal(t, api.Trigger{Actor: "anonymous", Kind: "api"}, b.Trigger)
	e.run.waitStarted(t)
	running := e.waitState(b.ID, StateBuilding)
	assert.Equal(t, 1, running.Attempts)
	assert.Contains(t, running.Phases, StateFetching)

	again := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"})
	require.Equal(t, http.StatusOK, again.status, string(again.body))
	assert.Equal(t, b.ID, again.build(t).ID)
	assert.Equal(t, "true", again.header.Get("X-Sailmaker-Coalesced"))

	forced := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2", "force": true})
	require.Equal(t, http.StatusAccepted, forced.status, string(forced.body))
	fb := forced.build(t)
	assert.NotEqual(t, b.ID, fb.ID)
	assert.True(t, fb.Force)
	envoy := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2", "envoySHA256": strings.Repeat("d", 64)})
	require.Equal(t, http.StatusAccepted, envoy.status, string(envoy.body))
	assert.NotEqual(t, b.ID, envoy.build(t).ID)

	e.run.finish()
	done := e.waitState(b.ID, StateSucceeded)
	require.Len(t, done.Images, 4, "pilot, proxyv2 and their distroless flavours")
	assert.Equal(t, "pilot", done.Images[0].Name)
	assert.Equal(t, "1.24.2", done.Images[0].Tag)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, done.Images[0].Digest)
	assert.Equal(t, done.Images[0].Repository+"@"+done.Images[0].Digest, done.Images[0].Reference)
	require.NotNil(t, done.Timings)
	assert.Equal(t, 3*time.Second, done.Timings.Total, "timings are seconds in JSON")
	require.NotNil(t, done.Finished)
	assert.Contains(t, done.Phases, StatePushing)
	e.waitState(fb.ID, StateSucceeded)

	// Finished: the same request queues a new build.
	later := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"})
	require.Equal(t, http.StatusAccepted, later.status)
	assert.NotEqual(t, b.ID, later.build(t).ID)

	// The list filters by state and recipe, newest first.
	var list struct{ Builds []Build }
	r := e.do("GET", "/v1/builds?recipe=istio", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	r.json(t, &list)
	require.Len(t, list.Builds, 4)
	assert.Equal(t, later.build(t).ID, list.Builds[0].ID)
	e.waitState(later.build(t).ID, StateSucceeded)
	r = e.do("GET", "/v1/builds?state=succeeded&recipe=istio@1.24.2&since=1h&limit=2", "", nil)
	r.json(t, &list)
	assert.Len(t, list.Builds, 2)
	r = e.do("GET", "/v1/builds?recipe=fixture", "", nil)
	r.json(t, &list)
	assert.Empty(t, list.Builds)
	r = e.do("GET", "/v1/builds?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "", nil)
	r.json(t, &list)
	assert.Empty(t, list.Builds)
}

// An inline recipe is built as sent; recipe warnings are kept.
func TestSubmitInline(t *testing.T) {
	e := newEnv(t)
	e.run.finish()
	r := e.do("POST", "/v1/builds", "", map[string]any{"recipe": fixtureRecipe(t, "1.0.0")})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	b := r.build(t)
	assert.Equal(t, "fixture@1.0.0", b.Recipe)
	assert.Equal(t, SourceInline, b.Source)
	done := e.waitState(b.ID, StateSucceeded)
	require.Len(t, done.Images, 2)
	assert.Equal(t, "127.0.0.1:5000/fixture/proxyv2", done.Images[1].Repository)
}

func TestBadInputIsA4xxWithAJSONError(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) { c.Server.MaxBodyBytes = 4096 })
	invalid := strings.Replace(string(fixtureRecipe(t, "1.0.0")), `"commit":"aaaa`, `"commit":"zzzz`, 1)
	cases := []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"malformed JSON", `{"recipe": "istio@1.24.2"`, "", 400, "malformed_json"},
		{"not JSON", `recipe=istio`, "", 400, "malformed_json"},
		{"empty body", ``, "", 400, "bad_request"},
		{"two values", `{"recipe": "istio@1.24.2"} {}`, "", 400, "bad_request"},
		{"unknown field", `{"recipe": "istio@1.24.2", "priority": 1}`, "", 400, "unknown_field"},
		{"wrong type", `{"recipe": "istio@1.24.2", "force": "yes"}`, "", 400, "bad_request"},
		{"no recipe", `{}`, "", 400, "bad_request"},
		{"recipe a number", `{"recipe": 7}`, "", 400, "bad_request"},
		{"bad envoy sum", `{"recipe": "istio@1.24.2", "envoySHA256": "abc"}`, "", 400, "bad_request"},
		{"unknown recipe", `{"recipe": "istio@9.9.9"}`, "", 422, "unknown_recipe"},
		{"a path as recipe", `{"recipe": "../../etc/passwd"}`, "", 422, "unknown_recipe"},
		{"invalid recipe", `{"recipe": ` + invalid + `}`, "", 422, "invalid_recipe"},
		{"invalid recipe kind", `{"recipe": {"apiVersion": "sailmaker.dev/v1alpha1", "kind": "Nope"}}`, "", 422, "invalid_recipe"},
		{"too large", `{"recipe": "` + strings.Repeat("x", 5000) + `"}`, "", 413, "too_large"},
		{"not JSON content type", `{"recipe": "istio@1.24.2"}`, "text/plain", 415, "unsupported_media_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", e.srv.URL+"/v1/builds", strings.NewReader(c.body))
			require.NoError(t, err)
			ct := c.contentType
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var body struct {
				Error apiError `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, c.status, resp.StatusCode, body.Error.Message)
			assert.Equal(t, c.code, body.Error.Code, body.Error.Message)
			assert.NotEmpty(t, body.Error.Message)
		})
	}
	// The validation errors are listed one by one.
	r := e.do("POST", "/v1/builds", "", `{"recipe": `+invalid+`}`)
	var body struct{ Error apiError }
	r.json(t, &body)
	require.NotEmpty(t, body.Error.Details)
	assert.Contains(t, strings.Join(body.Error.Details, "\n"), "spec.source.commit")

	// Other routes answer JSON errors too.
	assert.Equal(t, "not_found", e.do("GET", "/v1/builds/nope", "", nil).errorCode(t))
	assert.Equal(t, "not_found", e.do("GET", "/v1/builds/nope/log", "", nil).errorCode(t))
	assert.Equal(t, "not_found", e.do("POST", "/v1/builds/nope/cancel", "", nil).errorCode(t))
	assert.Equal(t, "not_found", e.do("GET", "/v2/anything", "", nil).errorCode(t))
	r = e.do("DELETE", "/v1/builds", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "method_not_allowed", r.errorCode(t))
	assert.Contains(t, r.header.Get("Allow"), "POST")
	assert.Equal(t, "bad_request", e.do("GET", "/v1/builds?state=done", "", nil).errorCode(t))
	assert.Equal(t, "bad_request", e.do("GET", "/v1/builds?colour=red", "", nil).errorCode(t))
	assert.Equal(t, "bad_request", e.do("GET", "/v1/builds?since=yesterday", "", nil).errorCode(t))
	assert.Equal(t, "bad_request", e.do("GET", "/v1/builds?limit=0", "", nil).errorCode(t))

	// Nothing was queued by any of it.
	var list struct{ Builds []Build }
	e.do("GET", "/v1/builds", "", nil).json(t, &list)
	assert.Empty(t, list.Builds)
}

func TestRoles(t *testing.T) {
	const admin, maint, auditor, ci = "smk_admin-secret", "smk_maintainer-secret", "smk_auditor-secret", "smk_ci-secret"
	e := newEnv(t, withTokens(map[string]string{admin: config.RoleAdmin, maint: config.RoleMaintainer, auditor: config.RoleAuditor, ci: config.RoleCI}))
	require.False(t, e.svc.Open())
	submit := map[string]any{"recipe": "istio@1.24.2"}

	r := e.do("GET", "/v1/builds", "", nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "unauthorized", r.errorCode(t))
	assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
	assert.Equal(t, http.StatusUnauthorized, e.do("GET", "/v1/builds", "smk_wrong", nil).status)
	assert.Equal(t, http.StatusUnauthorized, e.do("POST", "/v1/builds", "", submit).status)
	assert.Equal(t, http.StatusUnauthorized, e.do("GET", "/v1/builds", "", nil, "Authorization", "Basic "+admin).status)

	// The auditor reads, and cannot trigger or cancel.
	assert.Equal(t, http.StatusOK, e.do("GET", "/v1/builds", auditor, nil).status)
	r = e.do("POST", "/v1/builds", auditor, submit)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "forbidden", r.errorCode(t))
	// ci has nothing but the webhook.
	assert.Equal(t, http.StatusForbidden, e.do("GET", "/v1/builds", ci, nil).status)
	assert.Equal(t, http.StatusForbidden, e.do("POST", "/v1/builds", ci, submit).status)

	var list struct{ Builds []Build }
	e.do("GET", "/v1/builds", admin, nil).json(t, &list)
	assert.Empty(t, list.Builds, "refused requests queue nothing")

	r = e.do("POST", "/v1/builds", maint, submit)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	b := r.build(t)
	assert.Equal(t, "maintainer-token", b.Trigger.Actor)
	e.run.waitStarted(t)
	assert.Equal(t, http.StatusOK, e.do("GET", "/v1/builds/"+b.ID, auditor, nil).status)
	assert.Equal(t, http.StatusOK, e.do("GET", "/v1/builds/"+b.ID+"/log?follow=false", auditor, nil).status)
	assert.Equal(t, http.StatusForbidden, e.do("POST", "/v1/builds/"+b.ID+"/cancel", auditor, nil).status)
	assert.Equal(t, http.StatusForbidden, e.do("POST", "/v1/builds/"+b.ID+"/cancel", ci, nil).status)
	r = e.do("POST", "/v1/builds/"+b.ID+"/cancel", admin, nil)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	assert.Equal(t, StateCancelled, r.build(t).State)
	assert.Equal(t, "admin-token", r.build(t).CancelledBy)

	// Health, readiness and metrics need no token.
	assert.Equal(t, http.StatusOK, e.do("GET", "/healthz", "", nil).status)
	assert.Equal(t, http.StatusOK, e.do("GET", "/readyz", "", nil).status)
	assert.Equal(t, http.StatusOK, e.do("GET", "/metrics", "", nil).status)

	// No token, nor any part of one, is in the service's log.
	logs := e.logs.String()
	require.Contains(t, logs, "maintainer-token", "the log names the actor")
	for _, tok := range []string{admin, maint, auditor, ci, "smk_wrong", "secret"} {
		assert.NotContains(t, logs, tok)
	}
}

func TestAllows(t *testing.T) {
	cases := map[string][]string{
		config.RoleAdmin:      {config.RoleAdmin, config.RoleMaintainer, config.RoleAuditor, config.RoleCI},
		config.RoleMaintainer: {config.RoleMaintainer, config.RoleAuditor},
		config.RoleAuditor:    {config.RoleAuditor},
		config.RoleCI:         {config.RoleCI},
		"nobody":              {},
	}
	for role, can := range cases {
		for _, needs := range []string{config.RoleAdmin, config.RoleMaintainer, config.RoleAuditor, config.RoleCI} {
			want := false
			for _, c := range can {
				want = want || c == needs
			}
			assert.Equal(t, want, allows(role, needs), "%s doing what %s may", role, needs)
		}
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	a := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e.run.waitStarted(t)
	q := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2", "force": true}).build(t)
	require.Equal(t, StateQueued, q.State)

	// A queued build is cancelled at once and never runs.
	r := e.do("POST", "/v1/builds/"+q.ID+"/cancel", "", nil)
	require.Equal(t, http.StatusAccepted, r.status)
	assert.Equal(t, StateCancelled, r.build(t).State)
	assert.Contains(t, r.build(t).Error, "before it started")

	// A running one has its context cancelled; the answer comes when it
	// has stopped.
	r = e.do("POST", "/v1/builds/"+a.ID+"/cancel", "", nil)
	require.Equal(t, http.StatusAccepted, r.status)
	got := r.build(t)
	assert.Equal(t, StateCancelled, got.State)
	assert.Equal(t, "cancelled by anonymous", got.Error)
	e.run.mu.Lock()
	assert.ErrorIs(t, e.run.ctxErr[a.ID], errCancelled)
	e.run.mu.Unlock()

	r = e.do("POST", "/v1/builds/"+a.ID+"/cancel", "", nil)
	assert.Equal(t, http.StatusConflict, r.status)
	assert.Equal(t, "conflict", r.errorCode(t))
	log := e.do("GET", "/v1/builds/"+a.ID+"/log", "", nil)
	assert.Contains(t, string(log.body), "cancelled by anonymous")

	select {
	case id := <-e.run.started:
		t.Fatalf("the cancelled queued build %s ran", id)
	case <-time.After(300 * time.Millisecond):
	}
}

// A build found running when the service starts was interrupted: it is
// queued again with the reason kept, and builds; with no retries left it
// fails with that reason.
func TestRecoverInterruptedBuilds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Builds a crashed service left behind: one building after one
	// interruption already, two pushing and building after none.
	again := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e.run.waitStarted(t)
	e.stop(0) // cancelled by a graceful stop: queued again, retries untouched
	b := e.waitState(again.ID, StateQueued)
	require.Len(t, b.Interruptions, 1)
	assert.True(t, b.Interruptions[0].Graceful)
	assert.Equal(t, "interrupted: the service was stopped during building", b.Interruptions[0].Reason)

	crash := func(id string, st State) {
		_, err := e.svc.db.update(ctx, id, func(b *Build) error { b.State = st; b.Attempts++; return nil })
		require.NoError(t, err)
	}
	crash(again.ID, StateBuilding)
	other := e.do("POST", "/v1/builds", "", map[string]any{"recipe": fixtureRecipe(t, "1.0.0")}).build(t)
	crash(other.ID, StatePushing)

	e2 := startEnv(t, e.cfg, e.st)
	e2.run.finish()
	for _, c := range []struct {
		id       string
		attempts int
		phase    State
	}{{again.ID, 3, StateBuilding}, {other.ID, 2, StatePushing}} {
		id := c.id
		b := e2.waitState(id, StateSucceeded)
		assert.Equal(t, c.attempts, b.Attempts, "%s: a start per attempt", id)
		last := b.Interruptions[len(b.Interruptions)-1]
		assert.False(t, last.Graceful)
		assert.Equal(t, c.phase, last.Phase)
		assert.Equal(t, "interrupted: the service stopped during "+string(c.phase), last.Reason)
		log := e2.do("GET", "/v1/builds/"+id+"/log", "", nil)
		assert.Contains(t, string(log.body), last.Reason+"; queued again")
	}

	// Retries used up: failed, with the reason.
	e2.stop(time.Second)
	crash(other.ID, StateBuilding) // a second crash of a (re)started build
	_, err := e2.svc.db.update(ctx, other.ID, func(b *Build) error { b.Finished = nil; return nil })
	require.NoError(t, err)
	e3 := startEnv(t, e.cfg, e.st)
	b = e3.waitState(other.ID, StateFailed)
	assert.Contains(t, b.Error, "interrupted: the service stopped during building")
	assert.Contains(t, b.Error, "retries: 1")
	select {
	case id := <-e3.run.started:
		t.Fatalf("build %s ran although its retries were used up", id)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestRetriesZeroFailsAtOnce(t *testing.T) {
	zero := 0
	e := newEnv(t, func(c *config.Config, _ *Options) { c.Server.Retries = &zero })
	b := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e.run.waitStarted(t)
	e.stop(0)
	_, err := e.svc.db.update(context.Background(), b.ID, func(b *Build) error { b.State = StateFetching; b.Attempts++; return nil })
	require.NoError(t, err)
	e2 := startEnv(t, e.cfg, e.st, func(c *config.Config, _ *Options) { c.Server.Retries = &zero })
	got := e2.waitState(b.ID, StateFailed)
	assert.Equal(t, "interrupted: the service stopped during fetching (attempt 2; retries: 0)", got.Error)
}

// On SIGTERM running builds get the grace period, then are cancelled and
// queued again; the next start runs them.
func TestGracefulStop(t *testing.T) {
	e := newEnv(t)
	fin := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e.run.waitStarted(t)
	// One that finishes within the grace period ends normally.
	go func() { time.Sleep(100 * time.Millisecond); e.run.finish() }()
	e.stop(5 * time.Second)
	assert.Equal(t, StateSucceeded, e.waitState(fin.ID, StateSucceeded).State)
	assert.Equal(t, http.StatusServiceUnavailable, e.do("GET", "/readyz", "", nil).status)

	e2 := startEnv(t, e.cfg, e.st)
	slow := e2.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e2.run.waitStarted(t)
	start := time.Now()
	e2.stop(200 * time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	b := e2.waitState(slow.ID, StateQueued)
	require.Len(t, b.Interruptions, 1)
	assert.True(t, b.Interruptions[0].Graceful)

	e3 := startEnv(t, e.cfg, e.st)
	e3.run.finish()
	b = e3.waitState(slow.ID, StateSucceeded)
	assert.Equal(t, 2, b.Attempts)
}

func TestTimeout(t *testing.T) {
	e := newEnv(t, func(c *config.Config, _ *Options) { c.Server.BuildTimeout = 200 * time.Millisecond })
	b := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	got := e.waitState(b.ID, StateFailed)
	assert.Contains(t, got.Error, "timed out after 200ms (server.buildTimeout) during building")
}

// A failing or panicking build fails with its error; the next one runs.
func TestBuildFailure(t *testing.T) {
	e := newEnv(t)
	calls := 0
	e.run.fn = func(ctx context.Context, j Job) (*api.Result, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("compile error: undefined: foo")
		}
		panic("boom")
	}
	a := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	got := e.waitState(a.ID, StateFailed)
	assert.Equal(t, "compile error: undefined: foo", got.Error)
	b := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	got = e.waitState(b.ID, StateFailed)
	assert.Equal(t, "internal error: boom", got.Error)
	log := e.do("GET", "/v1/builds/"+a.ID+"/log", "", nil)
	assert.Contains(t, string(log.body), "compiling istio@1.24.2")
	assert.Contains(t, string(log.body), "failed: compile error: undefined: foo")
}

// The log streams while the build runs and ends when it ends.
func TestLogStreams(t *testing.T) {
	e := newEnv(t)
	step := make(chan struct{})
	e.run.fn = func(ctx context.Context, j Job) (*api.Result, error) {
		for i := 0; i < 3; i++ {
			<-step
			fmt.Fprintf(j.Log, "step %d\n", i)
		}
		return fakeResult(j.Recipe), nil
	}
	b := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e.run.waitStarted(t)
	c, err := NewClient(e.srv.URL, "")
	require.NoError(t, err)
	lines := make(chan string, 10)
	done := make(chan *Build, 1)
	go func() {
		got, err := c.Log(context.Background(), b.ID, 0, true, lineWriter(lines), time.Second)
		assert.NoError(t, err)
		done <- got
	}()
	for i := 0; i < 3; i++ {
		step <- struct{}{}
		want := fmt.Sprintf("step %d", i)
		for line := range lines {
			if line == want {
				break
			}
		}
	}
	select {
	case got := <-done:
		require.NotNil(t, got)
		assert.Equal(t, StateSucceeded, got.State)
	case <-time.After(10 * time.Second):
		t.Fatal("the log stream did not end with the build")
	}
	full := e.do("GET", "/v1/builds/"+b.ID+"/log", "", nil)
	assert.Equal(t, "text/plain; charset=utf-8", full.header.Get("Content-Type"))
	assert.Regexp(t, `(?s)attempt 1.*compiling istio@1.24.2.*step 0\nstep 1\nstep 2\n.*succeeded`, string(full.body))
	part := e.do("GET", "/v1/builds/"+b.ID+"/log?offset=10", "", nil)
	assert.Equal(t, string(full.body[10:]), string(part.body))
	assert.Equal(t, "bad_request", e.do("GET", "/v1/builds/"+b.ID+"/log?follow=maybe", "", nil).errorCode(t))
}

type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w <- l
	}
	return len(p), nil
}

func TestAuditHandlerMount(t *testing.T) {
	const auditor, ci = "smk_auditor", "smk_ci"
	audit := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/audit/panic" {
			panic("audit bug")
		}
		writeJSON(w, http.StatusOK, map[string]string{"path": r.URL.Path, "q": r.URL.Query().Get("tag")})
	})
	e := newEnv(t, withTokens(map[string]string{auditor: config.RoleAuditor, ci: config.RoleCI}), func(_ *config.Config, o *Options) { o.AuditHandler = audit })
	r := e.do("GET", "/v1/audit/tags?tag=1.0.0", auditor, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var got map[string]string
	r.json(t, &got)
	assert.Equal(t, map[string]string{"path": "/v1/audit/tags", "q": "1.0.0"}, got)
	assert.Equal(t, http.StatusUnauthorized, e.do("GET", "/v1/audit/tags", "", nil).status)
	assert.Equal(t, http.StatusForbidden, e.do("GET", "/v1/audit/tags", ci, nil).status)
	assert.Equal(t, http.StatusMethodNotAllowed, e.do("POST", "/v1/audit/tags", auditor, "{}").status)
	// A panic is a 500 with a JSON body, and the service goes on.
	r = e.do("GET", "/v1/audit/panic", auditor, nil)
	assert.Equal(t, http.StatusInternalServerError, r.status)
	assert.Equal(t, "internal", r.errorCode(t))
	assert.Equal(t, http.StatusOK, e.do("GET", "/healthz", "", nil).status)

	// Without an audit handler there is no such endpoint.
	plain := newEnv(t)
	assert.Equal(t, http.StatusNotFound, plain.do("GET", "/v1/audit/tags", "", nil).status)
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.run.finish()
	b := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "istio@1.24.2"}).build(t)
	e.waitState(b.ID, StateSucceeded)
	r := e.do("GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	text := string(r.body)
	for _, want := range []string{
		`sailmaker_builds{state="succeeded"} 1`,
		`sailmaker_builds{state="queued"} 0`,
		`sailmaker_queue_depth 0`,
		`sailmaker_builds_finished_total{state="succeeded"} 1`,
		`sailmaker_push_bytes_total 4000`, // istio@1.24.2 has four images
		`sailmaker_build_duration_seconds_count{state="succeeded"} 1`,
		`sailmaker_build_phase_duration_seconds_sum{phase="solve"} 2`,
		`sailmaker_http_requests_total{code="202",method="POST"} 1`,
	} {
		assert.Contains(t, text, want)
	}
}

func TestReadyz(t *testing.T) {
	e := newEnv(t, func(_ *config.Config, o *Options) {
		o.Ready = map[string]func(context.Context) error{
			"buildkit": func(context.Context) error { return errors.New("buildkitd is not answering") },
			"registry": func(context.Context) error { return nil },
		}
	})
	r := e.do("GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	var body struct {
		Status string
		Checks map[string]string
	}
	r.json(t, &body)
	assert.Equal(t, "not ready", body.Status)
	assert.Equal(t, map[string]string{"buildkit": "buildkitd is not answering", "registry": "ok", "stateDir": "ok"}, body.Checks)
}

// A stored recipe (what the webhook makes) can be asked for by id.
func TestSubmitStoredRecipe(t *testing.T) {
	e := newEnv(t)
	e.run.finish()
	doc := fixtureRecipe(t, "1.2.0")
	require.NoError(t, os.WriteFile(e.svc.storedRecipePath("fixture@1.2.0"), doc, 0o644))
	r := e.do("POST", "/v1/builds", "", map[string]any{"recipe": "fixture@1.2.0"})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	b := r.build(t)
	assert.Equal(t, SourceStored, b.Source)
	// The build uses the document kept with it, even if the file changes.
	require.NoError(t, os.WriteFile(e.svc.storedRecipePath("fixture@1.2.0"), []byte("garbage"), 0o644))
	e.waitState(b.ID, StateSucceeded)
	r = e.do("POST", "/v1/builds", "", map[string]any{"recipe": "fixture@1.2.0"})
	assert.Equal(t, http.StatusUnprocessableEntity, r.status)
}

// A recipe sent to the service may take its source and artifacts only from
// where server.inputs allows: a file of the service's host or a loopback
// URL nobody allowed is refused with 422 before anything is queued, each
// field named.
func TestSubmitRefusesInputsOutsideThePolicy(t *testing.T) {
	e := newEnv(t)
	for name, c := range map[string]struct {
		old, new string
		field    string
	}{
		"envoy from a host file": {"http://127.0.0.1:1/envoy/", "file:///etc/", "spec.inputs.envoy.url: file:///etc/envoy-alpha-"},
		"envoy from loopback":    {"http://127.0.0.1:1/envoy/", "http://127.0.0.1:9/", "spec.inputs.envoy.url: http://127.0.0.1:9/envoy-alpha-"},
		"git from the host":      {"file:///srv/git/fixture.git", "file:///root/private.git", "spec.source.git: file:///root/private.git is not a source"},
	} {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(string(fixtureRecipe(t, "1.0.0")), c.old, c.new, 1)
			r := e.do("POST", "/v1/builds", "", map[string]any{"recipe": json.RawMessage(doc)})
			require.Equal(t, http.StatusUnprocessableEntity, r.status, string(r.body))
			var body struct {
				Error struct {
					Code    string   `json:"code"`
					Details []string `json:"details"`
				} `json:"error"`
			}
			r.json(t, &body)
			assert.Equal(t, "input_not_allowed", body.Error.Code)
			require.Len(t, body.Error.Details, 1)
			assert.Contains(t, body.Error.Details[0], c.field)
		})
	}
	var list struct{ Builds []Build }
	e.do("GET", "/v1/builds", "", nil).json(t, &list)
	assert.Empty(t, list.Builds, "nothing queued")
}
