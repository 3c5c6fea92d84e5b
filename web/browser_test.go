package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/sample"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/web"
)

// seen is what the browser sent and got: every URL, every response's
// status and policy, every page's HTML, and what its console said.
type seen struct {
	mu        sync.Mutex
	urls      []string
	responses []seenResponse
	html      []string
	console   []string
}

type seenResponse struct {
	url    string
	status int64
	csp    string
}

func (s *seen) response(r *network.Response) {
	if r == nil {
		return
	}
	csp := ""
	for k, v := range r.Headers {
		if strings.EqualFold(k, "Content-Security-Policy") {
			csp = fmt.Sprint(v)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responses = append(s.responses, seenResponse{url: r.URL, status: r.Status, csp: csp})
}

func (s *seen) listen(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		s.mu.Lock()
		s.urls = append(s.urls, ev.Request.URL)
		s.mu.Unlock()
		s.response(ev.RedirectResponse)
	case *network.EventResponseReceived:
		s.response(ev.Response)
	}
}

// startChromium starts Debian's chromium, headless, with a fresh profile,
// and records what it does in s.
func startChromium(t *testing.T, s *seen) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "the browser test needs Debian's chromium package (make deps installs it)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(s.listen))
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx), "starting chromium")
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			s.mu.Lock()
			s.console = append(s.console, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
			s.mu.Unlock()
		}
	}()
	return ctx
}

// A maintainer and an auditor use the pages of a real `sailmaker serve`
// (real buildkitd and registry) in headless Chromium: log in, queue the
// fixture recipe, watch its log stream while it builds, see it succeed,
// find the provenance's commit on the image page; an auditor is offered no
// Trigger or Cancel and is refused when it posts the forms anyway; a wrong
// token is refused. No token or secret is in any page, URL or log, every
// response carries the Content-Security-Policy, and the browser reports
// no violation of it. Screenshots of every page go to $SAILMAKER_SCREENSHOTS
// (or the test's artifact directory: go test -artifacts).
func TestBrowser(t *testing.T) {
	e := testenv.Start(t)
	e.Bases(t)
	reg := e.Config.Registry.Address

	shots := os.Getenv("SAILMAKER_SCREENSHOTS")
	if shots == "" {
		shots = t.ArtifactDir()
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	t.Logf("screenshots in %s", shots)

	// The fixture upstream, and a slow twin whose make step sleeps (to
	// cancel while it runs), both stored as recipes in the service's state.
	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	marker := strconv.Itoa(100000 + rand.IntN(900000))
	overlay := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(overlay, "Makefile.overrides.mk"), []byte("PILOT_DISCOVERY_PRE := sleep "+marker+"\n"), 0o644))
	slow := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.2.0", Overlay: overlay})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	arts := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	state := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(state, "recipes"), 0o755))
	for _, r := range []*fixture.Repo{repo, slow} {
		text, err := sample.RenderRecipe(r.Repo, arts.URL+"/envoy/", envoySHA, reg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(state, "recipes", "fixture@"+r.Tag+".yaml"), []byte(text), 0o644))
	}

	tokens := map[string]string{}
	var tokenCfg []map[string]string
	for _, role := range []string{config.RoleMaintainer, config.RoleAuditor} {
		tok, sum, err := service.NewToken()
		require.NoError(t, err)
		tokens[role] = tok
		tokenCfg = append(tokenCfg, map[string]string{"name": role + "-bot", "role": role, "sha256": sum})
	}
	maint, auditor := tokens[config.RoleMaintainer], tokens[config.RoleAuditor]
	wrong, _, err := service.NewToken()
	require.NoError(t, err)
	secret := "webhook-secret-" + marker
	writeConfig(t, state, map[string]any{
		"registry": map[string]any{"address": reg},
		"buildkit": map[string]any{"address": e.Config.BuildKit.Address},
		"server": map[string]any{"tokens": tokenCfg,
			// The fixture's repositories and artifact server.
			"inputs": map[string]any{"git": []string{"file:///tmp/"}, "artifacts": []string{arts.URL + "/envoy/"}}},
	})
	p := startServe(t, state, freeAddr(t), "SAILMAKER_WEBHOOK_SECRET="+secret)

	s := &seen{}
	ctx := startChromium(t, s)
	tctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	ctx = tctx
	b := &tab{t: t, ctx: ctx, s: s, base: p.url, shots: shots}
	api := func(id string) *service.Build {
		t.Helper()
		req, err := http.NewRequest("GET", p.url+"/v1/builds/"+id, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+auditor)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(data))
		var bd service.Build
		require.NoError(t, json.Unmarshal(data, &bd))
		return &bd
	}

	// Not logged in: the login page. A wrong token is refused.
	b.open("/")
	assert.Equal(t, p.url+"/login?next=%2F", b.location())
	b.checkPage()
	b.shot("login")
	status := b.submit(`#token`, wrong, `#login-form button[type=submit]`)
	assert.Equal(t, int64(http.StatusUnauthorized), status)
	assert.Contains(t, b.text("#login-error"), "That token is not valid here.")
	assert.Equal(t, "", b.eval(`document.getElementById('token').value`), "the token is not filled in again")

	// A maintainer logs in and queues the fixture recipe.
	status = b.submit(`#token`, maint, `#login-form button[type=submit]`)
	assert.Equal(t, int64(http.StatusOK), status)
	assert.Equal(t, p.url+"/", b.location())
	assert.Contains(t, b.text("#whoami"), "maintainer-bot")
	assert.Contains(t, b.text("#whoami"), "maintainer")
	b.checkPage()
	b.do(chromedp.Click(chromedp.ID("nav-trigger")), chromedp.WaitVisible(chromedp.ID("trigger-form")))
	b.checkPage()
	b.shot("trigger")
	b.do(chromedp.SetValue(chromedp.ID("recipe"), "fixture@"+repo.Tag))
	b.do(chromedp.Click(chromedp.CSS(`#trigger-form button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("log")))
	loc := b.location()
	require.Regexp(t, `/builds/[^/?]+$`, loc)
	id := loc[strings.LastIndex(loc, "/")+1:]
	bd := api(id)
	assert.Equal(t, "maintainer-bot", bd.Trigger.Actor)
	assert.Equal(t, web.TriggerKind, bd.Trigger.Kind)

	// Its log appears while it builds, in the same page (streamed, not
	// loaded again), and the page loads its result once it has ended.
	b.eval(`window.__sailmakerTest = 'same page'`)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		txt := b.eval(`window.__sailmakerTest === 'same page' ? document.getElementById('log').textContent : '(the page was loaded again)'`)
		require.NotEqual(t, "(the page was loaded again)", txt, "the build ended before its log was seen")
		if strings.Contains(txt, "sailmaker: build "+id+" of fixture@1.0.0") {
			cur := api(id)
			require.False(t, cur.State.Final(), "the log was seen only after the build ended (%s)", cur.State)
			break
		}
		require.True(t, time.Now().Before(deadline), "no log after 10 minutes")
		time.Sleep(100 * time.Millisecond)
	}
	for b.evalTry(`document.getElementById('build-state') && document.getElementById('build-state').textContent`) != "succeeded" {
		require.True(t, time.Now().Before(deadline), "the build did not succeed in 10 minutes: %+v", api(id))
		require.False(t, api(id).State.Final() && api(id).State != service.StateSucceeded, "the build ended: %+v", api(id))
		time.Sleep(250 * time.Millisecond)
	}
	b.do(chromedp.WaitVisible(chromedp.ID("images")))
	b.waitText("#log-status", "The build has succeeded.")
	logText := b.text("#log")
	assert.Contains(t, logText, "out/linux_amd64/pilot-discovery", "BuildKit's progress is in the log")
	assert.Contains(t, logText, "sailmaker: build "+id+" succeeded")
	assert.Equal(t, "5", b.eval(`String(document.querySelectorAll('#images tbody tr').length)`), "two images, istio-cni, istioctl, istioctl-versions")
	assert.Contains(t, b.text("#timings"), "s")
	b.checkPage()
	b.shot("build")
	logRequests := 0
	s.mu.Lock()
	for _, u := range s.urls {
		if strings.Contains(u, "/builds/"+id+"/log") {
			logRequests++
		}
	}
	s.mu.Unlock()
	assert.LessOrEqual(t, logRequests, 5, "the log is streamed, not polled")

	// The list shows it.
	b.open("/")
	assert.Contains(t, b.text(`tr[data-build="`+id+`"]`), "succeeded")
	assert.Contains(t, b.text(`tr[data-build="`+id+`"]`), "maintainer-bot")
	b.checkPage()
	b.shot("builds")

	// The image page: the provenance names the fixture's commit.
	b.open("/builds/" + id)
	b.do(chromedp.Click(chromedp.CSS(`#images a[href*="fixture%2Fpilot"]`)), chromedp.WaitVisible(chromedp.ID("provenance-facts")))
	assert.Equal(t, repo.Commit, b.text("#provenance-commit"))
	assert.Contains(t, b.text("#summary"), "fixture/pilot")
	b.checkPage()
	b.shot("image")
	b.viewShot("image-top")
	rows := b.eval(`String(document.querySelectorAll('#sbom-table tbody tr').length)`)
	require.NotEqual(t, "0", rows, "the SBOM lists modules and packages")
	b.do(chromedp.SendKeys(chromedp.ID("sbom-q"), "no-such-package-anywhere"))
	assert.Equal(t, "0", b.eval(`String([...document.querySelectorAll('#sbom-table tbody tr')].filter(r => !r.hidden).length)`), "the SBOM search filters as you type")

	// The registry and verify pages.
	b.open("/registry")
	assert.Contains(t, b.text("main"), "fixture/pilot")
	assert.Contains(t, b.text("main"), "fixture/proxyv2")
	// The Debian packages, listed on their own.
	pkgs := b.text(`section[aria-labelledby="packages"]`)
	assert.Contains(t, pkgs, "Debian packages")
	assert.Regexp(t, `istio-cni\s+1\.0\.0-1\s+amd64`, pkgs)
	assert.Regexp(t, `istioctl-versions\s+1\.0\.0\+1\.1000000\s+amd64\s+1\.0\.0`, pkgs)
	assert.NotContains(t, pkgs, "fixture/istioctl:1.0.0", "the binary is not a package")
	b.checkPage()
	b.shot("registry")
	b.open("/registry/verify")
	assert.Contains(t, b.text("main"), "images checked")
	b.checkPage()
	b.shot("verify")

	// At 360 px wide the pages fit: no page scrolls sideways.
	b.do(chromedp.EmulateViewport(360, 780))
	for _, path := range []string{"/", "/builds/" + id, "/trigger", "/registry", "/registry/image?image=fixture/pilot:1.0.0"} {
		b.open(path)
		assert.Equal(t, "true", b.eval(`String(document.documentElement.scrollWidth <= 360)`), "%s is wider than 360 px", path)
	}
	b.open("/builds/" + id)
	b.shot("build-360")
	b.do(chromedp.EmulateViewport(1280, 900))

	// The slow build: the maintainer is offered Cancel.
	b.open("/trigger")
	b.do(chromedp.SetValue(chromedp.ID("recipe"), "fixture@"+slow.Tag))
	b.do(chromedp.Click(chromedp.CSS(`#trigger-form button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("log")))
	loc = b.location()
	slowID := loc[strings.LastIndex(loc, "/")+1:]
	require.NotEqual(t, id, slowID)
	require.True(t, api(slowID).State.Active())
	b.do(chromedp.WaitVisible(chromedp.ID("cancel")))
	// A picture of it once the log shows the make step running.
	for shotBy := time.Now().Add(3 * time.Minute); time.Now().Before(shotBy); time.Sleep(250 * time.Millisecond) {
		if strings.Contains(b.evalTry(`document.getElementById('log').textContent`), "sleep "+marker) {
			break
		}
	}
	b.waitText("#build-state", "building") // the page's head refreshes while the build runs
	b.shot("build-running")

	// An auditor: no Trigger, no Cancel, and refused when it posts the
	// forms anyway (with its session's CSRF token, from this origin).
	b.do(chromedp.Click(chromedp.CSS(`header form button`)), chromedp.WaitVisible(chromedp.ID("login-form")))
	b.submit(`#token`, auditor, `#login-form button[type=submit]`)
	assert.Contains(t, b.text("#whoami"), "auditor-bot")
	assert.Equal(t, "false", b.eval(`String(!!document.getElementById('nav-trigger'))`))
	b.open("/builds/" + slowID)
	require.True(t, api(slowID).State.Active())
	assert.Equal(t, "false", b.eval(`String(!!document.getElementById('cancel'))`), "an auditor is offered no Cancel")
	b.checkPage()
	b.shot("build-auditor")
	assert.Equal(t, int64(http.StatusForbidden), b.openStatus("/trigger"))
	b.open("/builds/" + slowID)
	post := func(path string, form string) string {
		return b.evalAwait(`(async () => {
			const csrf = document.querySelector('input[name=csrf]').value;
			const r = await fetch(` + strconv.Quote(path) + `, {method: 'POST', body: new URLSearchParams({csrf: csrf, ` + form + `})});
			return String(r.status);
		})()`)
	}
	assert.Equal(t, "403", post("/trigger", `recipe: 'fixture@1.0.0', force: '1'`))
	assert.Equal(t, "403", post("/builds/"+slowID+"/cancel", `x: ''`))
	assert.True(t, api(slowID).State.Active(), "the auditor's cancel did nothing")
	bs := listBuilds(t, p.url, auditor)
	assert.Len(t, bs, 2, "the auditor's trigger queued nothing")

	// The maintainer cancels the slow build with the button, while another
	// tab shows the list: it refreshes itself until nothing runs.
	b.do(chromedp.Click(chromedp.CSS(`header form button`)), chromedp.WaitVisible(chromedp.ID("login-form")))
	b.submit(`#token`, maint, `#login-form button[type=submit]`)
	listCtx, closeList := chromedp.NewContext(ctx, chromedp.WithListener(s.listen))
	defer closeList()
	list := &tab{t: t, ctx: listCtx, s: s, base: p.url, shots: shots}
	list.open("/")
	row := `tr[data-build="` + slowID + `"]`
	assert.Contains(t, list.text(row), "building")
	assert.Equal(t, "true", list.eval(`String(!!document.querySelector('[data-refresh]'))`))
	list.eval(`window.__sailmakerTest = 'same page'`)
	b.open("/builds/" + slowID)
	b.do(chromedp.Click(chromedp.ID("cancel")), chromedp.WaitVisible(chromedp.ID("build-error")))
	assert.Equal(t, "cancelled", b.text("#build-state"))
	list.waitText(row+` .state`, "cancelled")
	assert.Equal(t, "same page", list.eval(`window.__sailmakerTest`), "the list refreshed in place")
	time.Sleep(5 * time.Second)
	assert.Equal(t, "false", list.eval(`String(!!document.querySelector('[data-refresh]'))`), "nothing runs: the list stops refreshing")
	closeList()
	cb := api(slowID)
	assert.Equal(t, service.StateCancelled, cb.State)
	assert.Equal(t, "maintainer-bot", cb.CancelledBy)
	b.waitText("#log-status", "The build has cancelled.")

	// Secrets: no token (not even a wrong one) or the webhook secret in a
	// page, a URL, the service's log or a build log; the cookie holds a
	// session id, HttpOnly and SameSite=Strict.
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	require.NoError(t, err)
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == web.SessionCookie {
			session = c
		}
	}
	require.NotNil(t, session)
	assert.True(t, session.HTTPOnly)
	assert.Equal(t, network.CookieSameSiteStrict, session.SameSite)
	p.term(90 * time.Second)
	var logs strings.Builder
	for _, f := range append(globFiles(t, filepath.Join(state, "builds", "*.log")), p.log) {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		logs.Write(data)
	}
	assert.Contains(t, logs.String(), "web: logged in", "the service logs logins")
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.html)
	for name, secretValue := range map[string]string{"maintainer token": maint, "auditor token": auditor, "wrong token": wrong, "webhook secret": secret} {
		for _, h := range s.html {
			assert.NotContains(t, h, secretValue, "the %s is in a page", name)
		}
		for _, u := range s.urls {
			assert.NotContains(t, u, secretValue, "the %s is in a URL", name)
		}
		assert.NotContains(t, logs.String(), secretValue, "the %s is in a log", name)
		assert.NotEqual(t, secretValue, session.Value)
		assert.NotContains(t, session.Value, secretValue[len(secretValue)-16:])
	}

	// Every response carries the policy, and the browser reports nothing
	// it blocked, and no script error.
	n := 0
	for _, r := range s.responses {
		if strings.HasPrefix(r.url, p.url) {
			n++
			assert.Equal(t, web.ContentSecurityPolicy, r.csp, "%s (%d)", r.url, r.status)
		}
	}
	assert.Greater(t, n, 30)
	for _, c := range s.console {
		assert.NotContains(t, c, "Content Security Policy")
		assert.NotContains(t, c, "exception")
		assert.NotContains(t, c, "Uncaught")
	}
	t.Logf("%d responses checked; console: %d messages:\n%s", n, len(s.console), strings.Join(s.console, "\n"))
}

func globFiles(t *testing.T, pattern string) []string {
	m, err := filepath.Glob(pattern)
	require.NoError(t, err)
	return m
}

func listBuilds(t *testing.T, url, token string) []service.Build {
	req, err := http.NewRequest("GET", url+"/v1/builds", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct{ Builds []service.Build }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Builds
}

// tab drives the browser's tab.
type tab struct {
	t     *testing.T
	ctx   context.Context
	s     *seen
	base  string
	shots string
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, actions...))
}

// open navigates to a page of the service and keeps its HTML.
func (b *tab) open(path string) {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.base+path))
	require.NoError(b.t, err)
	require.Less(b.t, resp.Status, int64(400), "%s: %d", path, resp.Status)
	b.keepHTML()
}

// openStatus navigates and returns the status, whatever it is.
func (b *tab) openStatus(path string) int64 {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.base+path))
	require.NoError(b.t, err)
	b.keepHTML()
	return resp.Status
}

// submit types value into the input and clicks the button, and returns the
// status of the page it leads to.
func (b *tab) submit(input, value, button string) int64 {
	b.t.Helper()
	b.do(chromedp.SendKeys(chromedp.CSS(input), value))
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(button)))
	require.NoError(b.t, err)
	b.keepHTML()
	return resp.Status
}

func (b *tab) keepHTML() {
	b.t.Helper()
	h, err := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(b.t, err)
	b.s.mu.Lock()
	b.s.html = append(b.s.html, h)
	b.s.mu.Unlock()
}

func (b *tab) location() string {
	b.t.Helper()
	l, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(b.t, err)
	return l
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(b.t, err)
	return strings.TrimSpace(s)
}

// waitText waits until the element's text is want.
func (b *tab) waitText(sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := b.evalTry(`(document.querySelector(` + strconv.Quote(sel) + `) || {}).textContent`)
		if strings.TrimSpace(got) == want {
			return
		}
		require.True(b.t, time.Now().Before(deadline), "%s says %q, not %q", sel, got, want)
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *tab) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](js))
	require.NoError(b.t, err, js)
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// evalTry is eval that answers "" while the page is being loaded.
func (b *tab) evalTry(js string) string {
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](js))
	if err != nil || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func (b *tab) evalAwait(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err)
	return v
}

// checkPage checks what every page must have: the user's name and role,
// a label for every field, and the first Tab lands on the skip link.
func (b *tab) checkPage() {
	b.t.Helper()
	b.keepHTML()
	unlabelled := b.eval(`[...document.querySelectorAll('input:not([type=hidden]), select, textarea')].filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.name).join(',')`)
	assert.Empty(b.t, unlabelled, "fields without a label on %s", b.location())
	assert.Equal(b.t, "en", b.eval(`document.documentElement.lang`))
	b.do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`), chromedp.KeyEvent("\t"))
	assert.Equal(b.t, "skip", b.eval(`document.activeElement.className`), "the first Tab goes to the skip link on %s", b.location())
	b.do(chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	if !strings.Contains(b.location(), "/login") {
		assert.NotEmpty(b.t, b.text("#whoami"), "the page says who you are")
	}
}

func (b *tab) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644))
}

// viewShot is a screenshot of what the window shows.
func (b *tab) viewShot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644))
}
