package web_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/sample"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
	"github.com/sailmaker/sailmaker/web"
)

// env is a real service (its builds run by a stand-in for the builder)
// with the pages mounted, on an httptest server, and an in-process
// registry for the registry pages.
type env struct {
	t       *testing.T
	svc     *service.Service
	srv     *httptest.Server
	release chan struct{}
	logs    *syncBuffer
	tokens  map[string]string // role -> token
}

// fakeRun goes through the phases, writes to the build's log, waits for
// release (or its context) and "pushes" one image per recipe image.
func (e *env) fakeRun(ctx context.Context, j service.Job) (*api.Result, error) {
	j.OnPhase(api.PhaseFetching)
	fmt.Fprintf(j.Log, "fetching %s\n", j.Recipe.ID())
	j.OnPhase(api.PhaseBuilding)
	fmt.Fprintf(j.Log, "compiling %s\n", j.Recipe.ID())
	select {
	case <-e.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	j.OnPhase(api.PhasePushing)
	res := &api.Result{Recipe: j.Recipe.ID(), RecipeDigest: j.Recipe.Digest(), Timings: &api.Timings{Fetch: time.Second, Solve: 2 * time.Second, Total: 3 * time.Second}}
	for _, img := range j.Recipe.Spec.Images {
		repo := config.DefaultRegistryAddr + "/" + img.Repository
		sum := sha256.Sum256([]byte(j.Recipe.Digest() + img.Name))
		d := fmt.Sprintf("sha256:%x", sum)
		res.Images = append(res.Images, api.Image{Name: img.Name, Output: "registry", Repository: repo, Tag: img.Tag, Reference: repo + "@" + d, Digest: d, Size: 2048, Status: api.StatusPushed})
	}
	return res, nil
}

func newEnv(t *testing.T, roles ...string) *env {
	t.Helper()
	reg := testenv.Registry(t)
	cfg := reg.Config
	e := &env{t: t, release: make(chan struct{}), logs: &syncBuffer{}, tokens: map[string]string{}}
	for _, role := range roles {
		tok, sum, err := service.NewToken()
		require.NoError(t, err)
		e.tokens[role] = tok
		cfg.Server.Tokens = append(cfg.Server.Tokens, config.ServerToken{Name: role + "-bot", Role: role, SHA256: sum})
	}
	st, err := store.OpenDir(context.Background(), cfg.StateDir)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	aud, err := audit.New(cfg, audit.WithLedger(st))
	require.NoError(t, err)

	// A stored recipe to queue: the fixture's (the stand-in does not fetch).
	repo := &sample.Repo{Tag: "1.0.0", URL: "file:///srv/git/fixture.git", Commit: strings.Repeat("a", 40), ProxySHA: strings.Repeat("b", 40)}
	text, err := sample.RenderRecipe(repo, "http://127.0.0.1:1/envoy/", strings.Repeat("c", 64), cfg.Registry.Address)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(cfg.StateDir, "recipes"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.StateDir, "recipes", "fixture@1.0.0.yaml"), []byte(text), 0o644))
	cfg.Server.Inputs = config.InputPolicy{Git: []string{"file:///srv/git/"}, Artifacts: []string{"http://127.0.0.1:1/envoy/"}}

	log := logrus.New()
	log.SetOutput(e.logs)
	svc, err := service.New(context.Background(), service.Options{
		Config: cfg, Store: st, Log: log, Run: e.fakeRun,
		Ready:        map[string]func(context.Context) error{},
		PollInterval: 50 * time.Millisecond,
		WebHandler: func(s *service.Service) http.Handler {
			return web.New(s, web.Options{Auditor: aud, Log: log})
		},
	})
	require.NoError(t, err)
	require.NoError(t, svc.Start(context.Background()))
	e.svc = svc
	e.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		e.finish()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Stop(ctx, 0)
	})
	return e
}

func (e *env) finish() {
	select {
	case <-e.release:
	default:
		close(e.release)
	}
}

// syncBuffer is the service's log, read by the test while it writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// browser is a client with its own cookies that does not follow redirects.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(data)}
	// Every response of the pages carries the policy.
	assert.Equal(b.t, web.ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"), "%s %s", req.Method, req.URL.Path)
	if m := csrfRE.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.e.srv.URL+path, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

// post sends a form as a browser on this origin does (Origin and
// Sec-Fetch-Site), with the last CSRF token seen unless form has one.
func (b *browser) post(path string, form url.Values, headers ...string) page {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, err := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

func (b *browser) cookie() *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == web.SessionCookie {
			return c
		}
	}
	return nil
}

func (b *browser) login(role string) {
	b.t.Helper()
	p := b.get("/login")
	require.Equal(b.t, http.StatusOK, p.status)
	p = b.post("/login", url.Values{"token": {b.e.tokens[role]}, "next": {"/"}})
	require.Equal(b.t, http.StatusSeeOther, p.status, p.body)
	// The new session's CSRF token, as the page after the login has it.
	require.Equal(b.t, http.StatusOK, b.get("/").status)
}

func (e *env) builds() []service.Build {
	bs, err := e.svc.Builds(context.Background(), service.ListFilter{})
	require.NoError(e.t, err)
	return bs
}

func TestLoginLogout(t *testing.T) {
	e := newEnv(t, config.RoleMaintainer, config.RoleCI)
	b := e.browser()

	p := b.get("/")
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, "/login?next=%2F", p.header.Get("Location"))

	p = b.get("/login")
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, `type="password"`)
	pre := b.cookie()
	require.NotNil(t, pre, "the login form comes with a session for its CSRF token")

	// A wrong token is refused, and not shown back.
	wrong, _, err := service.NewToken()
	require.NoError(t, err)
	p = b.post("/login", url.Values{"token": {wrong}})
	assert.Equal(t, http.StatusUnauthorized, p.status)
	assert.Contains(t, p.body, "That token is not valid here.")
	assert.NotContains(t, p.body, wrong)
	assert.Equal(t, http.StatusSeeOther, b.get("/").status, "still not logged in")

	// The login form needs its CSRF token, and the same origin.
	p = b.post("/login", url.Values{"token": {e.tokens[config.RoleMaintainer]}, "csrf": {"forged"}})
	assert.Equal(t, http.StatusForbidden, p.status)
	p = b.post("/login", url.Values{"token": {e.tokens[config.RoleMaintainer]}}, "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Equal(t, http.StatusSeeOther, b.get("/").status, "still not logged in")

	// The ci role has no pages.
	b.get("/login")
	p = b.post("/login", url.Values{"token": {e.tokens[config.RoleCI]}})
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Contains(t, p.body, "The ci role has no pages")

	b.get("/login")
	pre = b.cookie()
	p = b.post("/login", url.Values{"token": {e.tokens[config.RoleMaintainer]}, "next": {"/trigger"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	assert.Equal(t, "/trigger", p.header.Get("Location"))
	set := p.header.Get("Set-Cookie")
	assert.Contains(t, set, "HttpOnly")
	assert.Contains(t, set, "SameSite=Strict")
	assert.Contains(t, set, "Path=/")
	c := b.cookie()
	require.NotNil(t, c)
	assert.NotEqual(t, pre.Value, c.Value, "a new session id at login")
	assert.NotContains(t, c.Value, e.tokens[config.RoleMaintainer])
	assert.NotContains(t, set, e.tokens[config.RoleMaintainer])

	p = b.get("/")
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, `maintainer-bot <span class="role role-maintainer"`)
	assert.NotContains(t, p.body, e.tokens[config.RoleMaintainer])

	// The session id from before the login is worth nothing (fixation).
	old := e.browser()
	u, _ := url.Parse(e.srv.URL)
	old.c.Jar.SetCookies(u, []*http.Cookie{{Name: web.SessionCookie, Value: pre.Value}})
	assert.Equal(t, http.StatusSeeOther, old.get("/").status)

	// next= stays on this site.
	b2 := e.browser()
	b2.get("/login")
	p = b2.post("/login", url.Values{"token": {e.tokens[config.RoleMaintainer]}, "next": {"//evil.example/x"}})
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, "/", p.header.Get("Location"))

	// Logging out needs the CSRF token; then the session is gone.
	p = b.post("/logout", url.Values{"csrf": {"nope"}})
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Equal(t, http.StatusOK, b.get("/").status)
	p = b.post("/logout", url.Values{})
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, "/login", p.header.Get("Location"))
	assert.Contains(t, p.header.Get("Set-Cookie"), "Max-Age=0")
	assert.Equal(t, http.StatusSeeOther, b.get("/").status)
	// Reusing the logged-out cookie does not work either.
	old.c.Jar.SetCookies(u, []*http.Cookie{{Name: web.SessionCookie, Value: c.Value}})
	assert.Equal(t, http.StatusSeeOther, old.get("/").status)

	logs := e.logs.String()
	assert.Contains(t, logs, "web: logged in")
	for _, tok := range append([]string{wrong}, e.tokens[config.RoleMaintainer], e.tokens[config.RoleCI]) {
		assert.NotContains(t, logs, tok)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t, config.RoleMaintainer, config.RoleAuditor)
	aud := e.browser()
	aud.login(config.RoleAuditor)
	p := aud.get("/")
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, `auditor-bot <span class="role role-auditor"`)
	assert.NotContains(t, p.body, `href="/trigger"`, "an auditor is not offered the trigger form")
	assert.Equal(t, http.StatusForbidden, aud.get("/trigger").status)
	// Posting the form anyway, with a valid session and CSRF token.
	p = aud.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}})
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Contains(t, p.body, "The auditor role may not do this; it needs maintainer.")
	assert.Empty(t, e.builds(), "nothing was queued")

	m := e.browser()
	m.login(config.RoleMaintainer)
	p = m.get("/trigger")
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, `<option value="fixture@1.0.0">fixture@1.0.0</option>`, "the stored recipe")
	assert.Contains(t, p.body, `<option value="istio@1.24.2">istio@1.24.2</option>`, "the embedded recipe")
	p = m.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	loc := p.header.Get("Location")
	require.Regexp(t, `^/builds/[^/?]+$`, loc)
	id := strings.TrimPrefix(loc, "/builds/")
	bs := e.builds()
	require.Len(t, bs, 1)
	assert.Equal(t, id, bs[0].ID)
	assert.Equal(t, "maintainer-bot", bs[0].Trigger.Actor)
	assert.Equal(t, web.TriggerKind, bs[0].Trigger.Kind)
	assert.Equal(t, service.SourceStored, bs[0].Source)

	// The same request joins the build, as the API does.
	p = m.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}})
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, loc+"?joined=1", p.header.Get("Location"))
	require.Len(t, e.builds(), 1)

	// The build page: the maintainer can cancel, the auditor cannot.
	waitState(t, e, id, service.StateBuilding)
	p = m.get(loc)
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, `id="cancel"`)
	assert.Contains(t, p.body, `data-log="/builds/`+id+`/log"`)
	p = aud.get(loc)
	require.Equal(t, http.StatusOK, p.status)
	assert.NotContains(t, p.body, `id="cancel"`)
	p = aud.post(loc+"/cancel", url.Values{})
	assert.Equal(t, http.StatusForbidden, p.status)
	assert.Equal(t, service.StateBuilding, build(t, e, id).State)

	// The log streams through the service's own log handler.
	p = aud.get(loc + "/log?follow=false")
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, "compiling fixture@1.0.0")
	assert.Equal(t, "building", p.header.Get("X-Sailmaker-Build-State"))

	p = m.post(loc+"/cancel", url.Values{})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	assert.Equal(t, loc, p.header.Get("Location"))
	b := build(t, e, id)
	assert.Equal(t, service.StateCancelled, b.State)
	assert.Equal(t, "maintainer-bot", b.CancelledBy)
	p = m.post(loc+"/cancel", url.Values{})
	assert.Equal(t, http.StatusConflict, p.status)

	// The list shows it, and filters.
	p = aud.get("/?state=cancelled")
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, `data-build="`+id+`"`)
	assert.NotContains(t, p.body, "data-refresh", "nothing runs: no refreshing")
	p = aud.get("/?state=succeeded")
	assert.NotContains(t, p.body, `data-build="`+id+`"`)
	p = aud.get("/?recipe=istio")
	assert.NotContains(t, p.body, `data-build="`+id+`"`)
	p = aud.get("/?state=bogus")
	assert.Equal(t, http.StatusBadRequest, p.status)
	assert.Contains(t, p.body, `Unknown state &#34;bogus&#34;.`)
	p = aud.get("/?since=yesterday")
	assert.Equal(t, http.StatusBadRequest, p.status)

	// The service's access log names who asked, never the token.
	assert.Contains(t, e.logs.String(), `actor=maintainer-bot`)
	assert.Contains(t, e.logs.String(), `path=/builds/`+id+`/cancel`)

	// The API is still the API: JSON, bearer tokens.
	resp, err := http.Get(e.srv.URL + "/v1/builds")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	resp, err = http.Get(e.srv.URL + "/v1/nothing")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
}

func TestTriggerSucceedsAndShowsImages(t *testing.T) {
	e := newEnv(t, config.RoleMaintainer)
	m := e.browser()
	m.login(config.RoleMaintainer)
	p := m.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}, "force": {"1"}, "envoySHA256": {strings.Repeat("d", 64)}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	id := strings.TrimPrefix(p.header.Get("Location"), "/builds/")
	waitState(t, e, id, service.StateBuilding)
	p = m.get("/")
	assert.Contains(t, p.body, `data-refresh=`, "a build runs: the list refreshes")
	e.finish()
	b := waitState(t, e, id, service.StateSucceeded)
	assert.True(t, b.Force)
	assert.Equal(t, strings.Repeat("d", 64), b.EnvoySHA256)
	p = m.get("/builds/" + id)
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, b.Images[0].Digest)
	assert.Contains(t, p.body, `id="phases"`)
	assert.Contains(t, p.body, `id="timings"`)
	assert.Contains(t, p.body, `data-final="true"`)
	assert.NotContains(t, p.body, `id="cancel"`, "nothing to cancel")
}

func TestTriggerBadInput(t *testing.T) {
	e := newEnv(t, config.RoleMaintainer)
	m := e.browser()
	m.login(config.RoleMaintainer)
	p := m.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}, "envoySHA256": {"abc"}})
	assert.Equal(t, http.StatusBadRequest, p.status)
	assert.Contains(t, p.body, `must be 64 lowercase hex digits`)
	p = m.post("/trigger", url.Values{"recipe": {"nope@1.0.0"}})
	assert.Equal(t, http.StatusUnprocessableEntity, p.status)
	assert.Contains(t, p.body, `unknown recipe &#34;nope@1.0.0&#34;`)
	p = m.post("/trigger", url.Values{"recipe": {"../../etc/passwd"}})
	assert.Equal(t, http.StatusUnprocessableEntity, p.status)
	p = m.post("/trigger", url.Values{})
	assert.Equal(t, http.StatusBadRequest, p.status)
	assert.Empty(t, e.builds())
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, config.RoleMaintainer)
	m := e.browser()
	m.login(config.RoleMaintainer)
	other := e.browser()
	other.login(config.RoleMaintainer)
	m.get("/trigger")

	for name, tc := range map[string]struct {
		form    url.Values
		headers []string
	}{
		"no token":               {form: url.Values{"recipe": {"fixture@1.0.0"}, "csrf": {""}}},
		"another session's":      {form: url.Values{"recipe": {"fixture@1.0.0"}, "csrf": {other.csrf}}},
		"cross-site":             {form: url.Values{"recipe": {"fixture@1.0.0"}}, headers: []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		"another origin":         {form: url.Values{"recipe": {"fixture@1.0.0"}}, headers: []string{"Origin", "https://evil.example", "Sec-Fetch-Site", ""}},
		"token in the query too": {form: url.Values{"recipe": {"fixture@1.0.0"}, "csrf": {""}}},
	} {
		t.Run(name, func(t *testing.T) {
			path := "/trigger"
			if name == "token in the query too" {
				path += "?csrf=" + url.QueryEscape(m.csrf)
			}
			p := m.post(path, tc.form, tc.headers...)
			assert.Equal(t, http.StatusForbidden, p.status, p.body)
			assert.Contains(t, p.body, "The form was refused")
		})
	}
	assert.Empty(t, e.builds(), "nothing was queued")
	require.NotEqual(t, m.csrf, other.csrf, "each session has its own CSRF token")
}

// Every page and asset carries the policy (checked in browser.do), and
// no page has inline script or style for it to let through.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, config.RoleMaintainer)
	m := e.browser()
	m.login(config.RoleMaintainer)
	m.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}})
	id := e.builds()[0].ID
	scripts := regexp.MustCompile(`(?is)<script\b[^>]*>.*?</script>`)
	inline := regexp.MustCompile(`(?i)\sstyle=|\son[a-z]+=|javascript:|<style`)
	for _, path := range []string{"/", "/builds/" + id, "/trigger", "/registry", "/registry/verify", "/nowhere", "/static/app.js", "/static/app.css", "/builds/" + id + "/log?follow=false", "/login"} {
		p := m.get(path)
		assert.NotEqual(t, http.StatusInternalServerError, p.status, path)
		assert.Equal(t, "nosniff", p.header.Get("X-Content-Type-Options"), path)
		assert.Equal(t, "DENY", p.header.Get("X-Frame-Options"), path)
		assert.Equal(t, "same-origin", p.header.Get("Referrer-Policy"), path)
		if strings.HasPrefix(p.header.Get("Content-Type"), "text/html") && p.status/100 != 3 {
			assert.NotRegexp(t, inline, p.body, path)
			for _, tag := range scripts.FindAllString(p.body, -1) {
				assert.Equal(t, `<script src="/static/app.js" defer></script>`, tag, "%s: only the embedded script file", path)
			}
			assert.Contains(t, p.body, `<script src="/static/app.js" defer></script>`, path)
		}
	}
	p := e.browser().get("/login")
	assert.Contains(t, p.body, `<script src="/static/app.js" defer></script>`)
	assert.NotRegexp(t, inline, p.body)
	p = m.get("/nowhere")
	assert.Equal(t, http.StatusNotFound, p.status)
	assert.Contains(t, p.header.Get("Content-Type"), "text/html")
	req, _ := http.NewRequest("DELETE", e.srv.URL+"/trigger", nil)
	p = m.do(req)
	assert.Equal(t, http.StatusMethodNotAllowed, p.status)
	assert.Contains(t, web.ContentSecurityPolicy, "script-src 'self';")
	assert.NotContains(t, web.ContentSecurityPolicy, "unsafe-inline")
}

// A service without tokens (loopback only) treats every caller as admin,
// as the API does: no login, and its forms still need their CSRF token.
func TestOpenService(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.get("/")
	require.Equal(t, http.StatusOK, p.status)
	assert.Contains(t, p.body, `anonymous <span class="role role-admin"`)
	assert.Contains(t, p.body, "open service: no tokens")
	assert.Contains(t, p.body, `href="/trigger"`)
	p = b.get("/login")
	assert.Equal(t, http.StatusSeeOther, p.status)
	p = b.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}, "csrf": {"x"}})
	assert.Equal(t, http.StatusForbidden, p.status)
	b.get("/trigger")
	p = b.post("/trigger", url.Values{"recipe": {"fixture@1.0.0"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Len(t, e.builds(), 1)
	assert.Equal(t, "anonymous", e.builds()[0].Trigger.Actor)
}

func TestRegistryPages(t *testing.T) {
	e := newEnv(t, config.RoleAuditor)
	a := e.browser()
	a.login(config.RoleAuditor)
	p := a.get("/registry")
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Contains(t, p.body, "0 images in")
	p = a.get("/registry?commit=xyz")
	assert.Equal(t, http.StatusBadRequest, p.status)
	assert.Contains(t, p.body, "want at least 7 hex digits")
	p = a.get("/registry/image?image=fixture/pilot:9.9.9")
	assert.Equal(t, http.StatusNotFound, p.status)
	p = a.get("/registry/image")
	assert.Equal(t, http.StatusBadRequest, p.status)
	p = a.get("/registry/verify")
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Contains(t, p.body, "No findings.")
}

func build(t *testing.T, e *env, id string) *service.Build {
	t.Helper()
	b, err := e.svc.Build(context.Background(), id)
	require.NoError(t, err)
	return b
}

func waitState(t *testing.T, e *env, id string, want service.State) *service.Build {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b := build(t, e, id)
		if b.State == want {
			return b
		}
		require.True(t, time.Now().Before(deadline), "build %s is %s, not %s", id, b.State, want)
		time.Sleep(20 * time.Millisecond)
	}
}
