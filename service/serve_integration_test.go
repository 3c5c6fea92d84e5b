package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopFaultEnv()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// sailmakerBinary builds the real binary once per test process.
func sailmakerBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "sailmaker-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sailmaker")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sailmaker")
		cmd.Dir = testenv.ModuleRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv is this process's environment without sailmaker's settings, so
// that only what a test gives reaches the service.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SAILMAKER_") || strings.HasPrefix(kv, "BUILDKIT_HOST=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// serveProc is a running `sailmaker serve`.
type serveProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	log  string
	done chan error
}

// startServe runs `sailmaker serve` on state (its config in
// <state>/config.yaml) and waits until it answers /healthz.
func startServe(t *testing.T, state, listen string, env ...string) *serveProc {
	t.Helper()
	logPath := filepath.Join(state, "serve.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(sailmakerBinary(t), "serve", "--state-dir", state, "--listen", listen)
	cmd.Env = cleanEnv(append([]string{"SAILMAKER_BIN_DIR=" + filepath.Join(testenv.ModuleRoot(t), "bin")}, env...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &serveProc{t: t, cmd: cmd, url: "http://" + listen, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(90 * time.Second):
				_ = p.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("serve log (%s), last lines:\n%s", logPath, lastLines(logPath, 60))
		}
	})
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("sailmaker serve exited while starting (%v):\n%s", err, lastLines(logPath, 40))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sailmaker serve did not answer on %s:\n%s", listen, lastLines(logPath, 40))
		}
	}
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// term sends SIGTERM and waits for a clean exit.
func (p *serveProc) term(within time.Duration) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(p.t, err, "serve should exit 0 on SIGTERM:\n%s", lastLines(p.log, 30))
	case <-time.After(within):
		p.t.Fatalf("serve did not stop within %s of SIGTERM", within)
	}
}

// kill9 kills the service as a crash would.
func (p *serveProc) kill9() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

type api struct {
	t   *testing.T
	url string
}

func (a api) do(method, path, token string, body []byte, headers ...string) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, bytes.NewReader(body))
	require.NoError(a.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, data
}

func (a api) build(id, token string) *service.Build {
	a.t.Helper()
	status, body := a.do("GET", "/v1/builds/"+id, token, nil)
	require.Equal(a.t, http.StatusOK, status, string(body))
	var b service.Build
	require.NoError(a.t, json.Unmarshal(body, &b))
	return &b
}

func (a api) count(token string) int {
	a.t.Helper()
	status, body := a.do("GET", "/v1/builds", token, nil)
	require.Equal(a.t, http.StatusOK, status, string(body))
	var list struct{ Builds []service.Build }
	require.NoError(a.t, json.Unmarshal(body, &list))
	return len(list.Builds)
}

// waitFor polls a build until cond holds, failing after timeout.
func (a api) waitFor(id, token string, timeout time.Duration, what string, cond func(*service.Build) bool) *service.Build {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := a.build(id, token)
		if cond(b) {
			return b
		}
		if b.State.Final() || time.Now().After(deadline) {
			a.t.Fatalf("build %s: waited for %s, it is %s (error %q)", id, what, b.State, b.Error)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func submitBody(t *testing.T, recipeFile string) []byte {
	t.Helper()
	data, err := os.ReadFile(recipeFile)
	require.NoError(t, err)
	doc, err := service.RecipeDocument(data)
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{"recipe": doc})
	require.NoError(t, err)
	return body
}

func writeConfig(t *testing.T, state string, cfg map[string]any) {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(state, "config.yaml"), data, 0o600))
}

// processWith reports whether a process with exactly these arguments runs
// on the host (runc containers' processes are host processes).
func processWith(args ...string) bool {
	want := strings.Join(args, "\x00") + "\x00"
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == want {
			return true
		}
	}
	return false
}

// killProcessWith kills the processes with exactly these arguments.
func killProcessWith(args ...string) error {
	want := strings.Join(args, "\x00") + "\x00"
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == want {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return nil
}

// The service against a real buildkitd and registry: builds queued by the
// API and by the CLI (joining the same build) and by the signed webhook
// succeed and land in the registry; roles, bad signatures and replays are
// refused; cancelling a build stops its BuildKit solve; no token reaches
// the log; SIGTERM stops it cleanly.
func TestServeEndToEnd(t *testing.T) {
	e := testenv.Start(t)
	e.Bases(t)
	reg := e.Config.Registry.Address

	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	// The slow twin: pilot-discovery's build first sleeps, with a marker to
	// find the process by.
	marker := strconv.Itoa(100000 + rand.IntN(900000))
	overlay := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(overlay, "Makefile.overrides.mk"), []byte("PILOT_DISCOVERY_PRE := sleep "+marker+"\n"), 0o644))
	slow := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.2.0", Overlay: overlay})
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	recipeFile := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, reg)
	slowFile := fixture.WriteRecipe(t, slow, srv.URL+"/envoy/", envoySHA, reg)

	tokens := map[string]string{}
	var tokenCfg []map[string]string
	for _, role := range []string{config.RoleAdmin, config.RoleMaintainer, config.RoleAuditor, config.RoleCI} {
		tok, sum, err := service.NewToken()
		require.NoError(t, err)
		tokens[role] = tok
		tokenCfg = append(tokenCfg, map[string]string{"name": role + "-bot", "role": role, "sha256": sum})
	}
	maint, auditor, admin := tokens[config.RoleMaintainer], tokens[config.RoleAuditor], tokens[config.RoleAdmin]
	secret := "webhook-secret-" + marker
	state := t.TempDir()
	aptKeyFile, aptPub := aptKey(t, t.TempDir())
	writeConfig(t, state, map[string]any{
		"registry": map[string]any{"address": reg},
		"buildkit": map[string]any{"address": e.Config.BuildKit.Address},
		"signing":  map[string]any{"aptKey": aptKeyFile},
		"server": map[string]any{
			"tokens": tokenCfg,
			// The fixture's repositories (the webhook's repository and its
			// artifact server are allowed as such).
			"inputs": map[string]any{"git": []string{"file:///tmp/"}},
			"webhook": map[string]any{
				"repos":       []string{repo.URL},
				"go":          "1.23.4",
				"envoyURL":    srv.URL + "/envoy/" + fixture.EnvoyTarballName("${PROXY_REPO_SHA}"),
				"envoySHA256": map[string]string{repo.ProxySHA: envoySHA},
			},
		},
	})
	p := startServe(t, state, freeAddr(t), "SAILMAKER_WEBHOOK_SECRET="+secret)
	a := api{t, p.url}
	cli := func(token string, args ...string) (string, string, error) {
		cmd := exec.Command(sailmakerBinary(t), args...)
		cmd.Env = cleanEnv("SAILMAKER_TOKEN="+token, "SAILMAKER_SERVER="+p.url, "SAILMAKER_STATE_DIR="+t.TempDir())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	status, body := a.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, status, string(body))

	// An auditor cannot trigger; nobody without a token can.
	status, _ = a.do("POST", "/v1/builds", auditor, submitBody(t, recipeFile))
	assert.Equal(t, http.StatusForbidden, status)
	status, _ = a.do("POST", "/v1/builds", "", submitBody(t, recipeFile))
	assert.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, 0, a.count(auditor))

	// Queued by the API; the CLI asking for the same recipe joins it and
	// follows its log to the end.
	status, body = a.do("POST", "/v1/builds", maint, submitBody(t, recipeFile))
	require.Equal(t, http.StatusAccepted, status, string(body))
	var first service.Build
	require.NoError(t, json.Unmarshal(body, &first))
	stdout, stderr, err := cli(maint, "build", "-f", recipeFile, "--timings")
	require.NoError(t, err, "stderr:\n%s", stderr)
	assert.Contains(t, stderr, "build "+first.ID+" of fixture@1.0.0 was already")
	assert.Contains(t, stderr, "sailmaker: build "+first.ID+" succeeded")
	assert.Contains(t, stderr, "timings: fetch")
	assert.Regexp(t, reg+`/fixture/pilot\s+1\.0\.0\s+sha256:[0-9a-f]{64}`, stdout)

	b := a.build(first.ID, auditor)
	require.Equal(t, service.StateSucceeded, b.State, b.Error)
	assert.Equal(t, "maintainer-bot", b.Trigger.Actor)
	require.Len(t, published(b, "registry"), 5, "two images, istio-cni, istioctl, istioctl-versions")
	require.Len(t, published(b, "apt:"+filepath.Join(state, "apt")), 2, "istio-cni and istioctl-versions into the apt repository")
	for _, im := range b.Images {
		tag, err := e.Registry.Tag(strings.TrimPrefix(im.Repository, reg+"/"), im.Tag)
		require.NoError(t, err)
		d, ok, err := e.Registry.Resolve(context.Background(), tag)
		require.NoError(t, err)
		require.True(t, ok, "%s is in the registry", tag)
		assert.Equal(t, im.Digest, d.String())
	}
	require.Equal(t, 1, a.count(auditor), "the CLI's request joined the API's build")
	status, body = a.do("GET", "/v1/builds/"+first.ID+"/log", auditor, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, string(body), "out/linux_amd64/pilot-discovery", "BuildKit's progress is in the log")
	assert.Contains(t, string(body), "msg=pushed", "the pushes are in the log")

	out, stderr, err := cli(auditor, "builds", "show", first.ID)
	require.NoError(t, err, stderr)
	assert.Regexp(t, `State:\s+succeeded`, out)
	out, stderr, err = cli(auditor, "builds", "list", "--state", "succeeded", "-o", "json")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, first.ID)
	out, stderr, err = cli(auditor, "builds", "logs", first.ID)
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "sailmaker: build "+first.ID+" succeeded")

	// The audit queries are mounted for auditors: the images just built are
	// listed with their provenance; a caller without a token is refused.
	status, body = a.do("GET", "/v1/audit/images?repository=fixture/pilot", auditor, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var listed audit.ImagesResult
	require.NoError(t, json.Unmarshal(body, &listed), string(body))
	require.Len(t, listed.Images, 1, string(body))
	assert.Equal(t, "fixture/pilot:1.0.0", listed.Images[0].Name())
	assert.True(t, listed.Images[0].Provenance)
	status, _ = a.do("GET", "/v1/audit/images", "", nil)
	assert.Equal(t, http.StatusUnauthorized, status)

	// The webhook: a bad signature queues nothing; a good one derives the
	// recipe of the tag and builds it; a replay is ignored.
	hook, err := json.Marshal(map[string]string{"repo": repo.URL, "tag": "1.0.0"})
	require.NoError(t, err)
	status, _ = a.do("POST", "/v1/hooks/upstream-tag", "", hook, service.SignatureHeader, service.Sign("not the secret", hook), service.SailmakerDeliveryHeader, "del-1")
	assert.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, 1, a.count(auditor))
	status, body = a.do("POST", "/v1/hooks/upstream-tag", "", hook, service.SignatureHeader, service.Sign(secret, hook), service.SailmakerDeliveryHeader, "del-1")
	require.Equal(t, http.StatusAccepted, status, string(body))
	var hr service.WebhookResponse
	require.NoError(t, json.Unmarshal(body, &hr))
	require.Equal(t, "queued", hr.Status)
	assert.Equal(t, "istio@1.0.0", hr.Recipe)
	status, body = a.do("POST", "/v1/hooks/upstream-tag", "", hook, service.SignatureHeader, service.Sign(secret, hook), service.SailmakerDeliveryHeader, "del-1")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal(body, &hr))
	assert.Equal(t, "duplicate", hr.Status)
	hb := a.waitFor(hr.Build.ID, auditor, 10*time.Minute, "success", func(b *service.Build) bool { return b.State == service.StateSucceeded })
	assert.Equal(t, "del-1", hb.Trigger.DeliveryID)
	tag, err := e.Registry.Tag("istio/pilot", "1.0.0")
	require.NoError(t, err)
	d, ok, err := e.Registry.Resolve(context.Background(), tag)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, hb.Images[0].Digest, d.String())
	require.Equal(t, 2, a.count(auditor))

	// The next release, through the webhook: its packages, apt-get.
	webhookSecondRelease(t, a, auditor, secret, state, repo, aptPub, hb)
	require.Equal(t, 3, a.count(auditor))

	// Cancellation reaches BuildKit: the sleeping make step's process goes.
	status, body = a.do("POST", "/v1/builds", maint, submitBody(t, slowFile))
	require.Equal(t, http.StatusAccepted, status, string(body))
	var sb service.Build
	require.NoError(t, json.Unmarshal(body, &sb))
	deadline := time.Now().Add(5 * time.Minute)
	for !processWith("sleep", marker) {
		cur := a.build(sb.ID, auditor)
		require.False(t, cur.State.Final(), "the slow build ended: %s %s", cur.State, cur.Error)
		require.True(t, time.Now().Before(deadline), "the slow build's sleep never started")
		time.Sleep(500 * time.Millisecond)
	}
	assert.Equal(t, service.StateBuilding, a.build(sb.ID, auditor).State)
	status, _ = a.do("POST", "/v1/builds/"+sb.ID+"/cancel", auditor, nil)
	assert.Equal(t, http.StatusForbidden, status)
	out, stderr, err = cli(admin, "builds", "cancel", sb.ID)
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "build "+sb.ID+" cancelled")
	cb := a.build(sb.ID, auditor)
	assert.Equal(t, service.StateCancelled, cb.State)
	assert.Equal(t, "admin-bot", cb.CancelledBy)
	gone := time.Now().Add(30 * time.Second)
	for processWith("sleep", marker) {
		require.True(t, time.Now().Before(gone), "the build's process (sleep %s) still runs 30 s after the cancel", marker)
		time.Sleep(200 * time.Millisecond)
	}

	status, body = a.do("GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, status)
	metrics := string(body)
	assert.Contains(t, metrics, `sailmaker_builds{state="succeeded"} 3`)
	assert.Contains(t, metrics, `sailmaker_builds{state="cancelled"} 1`)
	assert.Contains(t, metrics, `sailmaker_queue_depth 0`)
	assert.Regexp(t, `sailmaker_push_bytes_total [1-9]`, metrics)

	p.term(60 * time.Second)
	logs, err := os.ReadFile(p.log)
	require.NoError(t, err)
	require.Contains(t, string(logs), "maintainer-bot", "the log names who did what")
	for role, tok := range tokens {
		assert.NotContains(t, string(logs), tok, "the %s token is in the service log", role)
		assert.NotContains(t, string(logs), tok[:16])
	}
	assert.NotContains(t, string(logs), secret)
	assert.NotContains(t, string(logs), "Bearer")
}

// kill -9 during a build: the next start finds it interrupted, runs it
// again and it succeeds, with the reason recorded and the tags where the
// ledger says. The service runs on the embedded defaults: its own registry
// (in-process) and its own buildkitd.
func TestServeCrashRestart(t *testing.T) {
	testenv.Integration(t)
	state, err := os.MkdirTemp("/tmp", "smsv-") // a short unix socket path
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(state) })
	t.Cleanup(func() { stopBuildKit(t, state) })
	reg := freeAddr(t)
	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	writeConfig(t, state, map[string]any{
		"registry": map[string]any{"address": reg},
		"server":   map[string]any{"inputs": map[string]any{"git": []string{"file:///tmp/"}, "artifacts": []string{srv.URL + "/envoy/"}}},
	})
	p := startServe(t, state, freeAddr(t))
	a := api{t, p.url}
	status, body := a.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, status, string(body))

	// The base images, into the service's registry.
	cfg := config.Default()
	cfg.StateDir = state
	cfg.Registry.Address = reg
	rc, err := registry.NewClient(cfg)
	require.NoError(t, err)
	(&testenv.Env{Config: cfg, Registry: rc}).Bases(t)

	recipeFile := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, reg)
	status, body = a.do("POST", "/v1/builds", "", submitBody(t, recipeFile))
	require.Equal(t, http.StatusAccepted, status, string(body))
	var b service.Build
	require.NoError(t, json.Unmarshal(body, &b))
	a.waitFor(b.ID, "", 5*time.Minute, "building", func(b *service.Build) bool { return b.State == service.StateBuilding })
	time.Sleep(3 * time.Second) // well inside the solve
	p.kill9()

	p2 := startServe(t, state, strings.TrimPrefix(p.url, "http://"))
	a2 := api{t, p2.url}
	done := a2.waitFor(b.ID, "", 10*time.Minute, "success", func(b *service.Build) bool { return b.State == service.StateSucceeded })
	assert.Equal(t, 2, done.Attempts)
	require.Len(t, done.Interruptions, 1)
	assert.Equal(t, "interrupted: the service stopped during building", done.Interruptions[0].Reason)
	assert.False(t, done.Interruptions[0].Graceful)
	status, body = a2.do("GET", "/v1/builds/"+b.ID+"/log", "", nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, string(body), "interrupted: the service stopped during building; queued again")
	assert.Contains(t, string(body), "attempt 2")

	// Every tag names the digest the build pushed, as the ledger says.
	st, err := store.OpenDir(context.Background(), state)
	require.NoError(t, err)
	defer st.Close()
	tags, err := st.Tags(context.Background())
	require.NoError(t, err)
	require.Len(t, done.Images, 5, "pilot, proxyv2, istio-cni, istioctl, istioctl-versions")
	for _, im := range done.Images {
		repoName := strings.TrimPrefix(im.Repository, reg+"/")
		tag, err := rc.Tag(repoName, im.Tag)
		require.NoError(t, err)
		d, ok, err := rc.Resolve(context.Background(), tag)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, im.Digest, d.String())
		ts, ok := tags[repoName+":"+im.Tag]
		require.True(t, ok, "the ledger records %s:%s", repoName, im.Tag)
		assert.Equal(t, im.Digest, ts.Digest)
		assert.Equal(t, b.ID, ts.Last.BuildID)
	}

	// The service watches its buildkitd: killed, it is started again.
	pidFile := buildkitd.PIDFile(filepath.Join(state, "buildkitd"))
	old := readPID(t, pidFile)
	require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, _ := a2.do("GET", "/readyz", "", nil)
		if pid := readPID(t, pidFile); pid != old && pid > 0 && status == http.StatusOK {
			break
		}
		require.True(t, time.Now().Before(deadline), "buildkitd was not started again:\n%s", lastLines(p2.log, 20))
		time.Sleep(500 * time.Millisecond)
	}
	assert.Contains(t, lastLines(p2.log, 50), "buildkitd is gone: starting it again")
	p2.term(60 * time.Second)
	// What it started, it stops.
	_, err = os.Stat(pidFile)
	assert.True(t, os.IsNotExist(err), "buildkitd's pid file is gone after SIGTERM")
}

func readPID(t *testing.T, file string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// stopBuildKit stops the buildkitd a service started in state (a killed
// service leaves it running, and the next one uses it).
func stopBuildKit(t *testing.T, state string) {
	data, err := os.ReadFile(buildkitd.PIDFile(filepath.Join(state, "buildkitd")))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Logf("buildkitd (pid %d) did not stop on SIGTERM: killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
