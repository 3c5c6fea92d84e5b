package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/sample"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/store"
)

// syncBuffer is a log destination tests read while the service writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// fakeRun stands in for builder.Build: it goes through the phases, writes
// to the log, reports that it started, then waits for release (or its
// context) and "pushes" one image per recipe image.
type fakeRun struct {
	started chan string
	release chan struct{}
	// fn, if set, replaces the waiting and the result.
	fn func(ctx context.Context, j Job) (*api.Result, error)

	mu     sync.Mutex
	ctxErr map[string]error // how each attempt's context ended
	once   sync.Once
}

// finish lets every waiting and later build finish.
func (f *fakeRun) finish() { f.once.Do(func() { close(f.release) }) }

func newFakeRun() *fakeRun {
	return &fakeRun{started: make(chan string, 100), release: make(chan struct{}), ctxErr: map[string]error{}}
}

func (f *fakeRun) run(ctx context.Context, j Job) (*api.Result, error) {
	j.OnPhase(api.PhaseFetching)
	fmt.Fprintf(j.Log, "fetching %s\n", j.Recipe.ID())
	j.OnPhase(api.PhaseBuilding)
	fmt.Fprintf(j.Log, "compiling %s\n", j.Recipe.ID())
	f.started <- j.Build.ID
	if f.fn != nil {
		return f.fn(ctx, j)
	}
	select {
	case <-f.release:
	case <-ctx.Done():
		f.mu.Lock()
		f.ctxErr[j.Build.ID] = context.Cause(ctx)
		f.mu.Unlock()
		return nil, fmt.Errorf("build cancelled: %w", ctx.Err())
	}
	j.OnPhase(api.PhasePushing)
	fmt.Fprintf(j.Log, "pushing %s\n", j.Recipe.ID())
	return fakeResult(j.Recipe), nil
}

func (f *fakeRun) waitStarted(t *testing.T) string {
	t.Helper()
	select {
	case id := <-f.started:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no build started")
		return ""
	}
}

func fakeResult(r *recipes.Recipe) *api.Result {
	res := &api.Result{Recipe: r.ID(), RecipeDigest: r.Digest(), Timings: &api.Timings{Fetch: time.Second, Solve: 2 * time.Second, Total: 3 * time.Second}}
	for _, img := range r.Spec.Images {
		repo := config.DefaultRegistryAddr + "/" + img.Repository
		sum := sha256.Sum256([]byte(r.Digest() + img.Name))
		d := fmt.Sprintf("sha256:%x", sum)
		res.Images = append(res.Images, api.Image{Name: img.Name, Output: "registry", Repository: repo, Tag: img.Tag,
			Reference: repo + "@" + d, Digest: d, Size: 2048, BytesUploaded: 1000, Status: api.StatusPushed})
	}
	return res
}

// testEnv is a service on an httptest server with a fake builder.
type testEnv struct {
	t    *testing.T
	cfg  *config.Config
	st   *store.Store
	svc  *Service
	srv  *httptest.Server
	run  *fakeRun
	logs *syncBuffer
	opts Options
}

type envOption func(*config.Config, *Options)

func newEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Registry.Root = cfg.StateDir + "/registry"
	// Where fixtureRecipe's inputs are: an admin's local mirrors.
	cfg.Server.Inputs = config.InputPolicy{Git: []string{"file:///srv/git/"}, Artifacts: []string{"http://127.0.0.1:1/envoy/"}}
	st, err := store.OpenDir(context.Background(), cfg.StateDir)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return startEnv(t, cfg, st, opts...)
}

// startEnv starts a service on an existing state (a restart).
func startEnv(t *testing.T, cfg *config.Config, st *store.Store, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t, cfg: cfg, st: st, run: newFakeRun(), logs: &syncBuffer{}}
	log := logrus.New()
	log.SetOutput(e.logs)
	log.SetLevel(logrus.DebugLevel)
	e.opts = Options{
		Config:       cfg,
		Store:        st,
		Log:          log,
		Run:          e.run.run,
		Ready:        map[string]func(context.Context) error{"fake": func(context.Context) error { return nil }},
		PollInterval: 50 * time.Millisecond,
	}
	for _, o := range opts {
		o(cfg, &e.opts)
	}
	svc, err := New(context.Background(), e.opts)
	require.NoError(t, err)
	require.NoError(t, svc.Start(context.Background()))
	e.svc = svc
	e.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		e.run.finish()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Stop(ctx, 0)
	})
	return e
}

// stop stops the service (SIGTERM) with a grace period.
func (e *testEnv) stop(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(e.t, e.svc.Stop(ctx, grace))
}

func withTokens(tokens map[string]string) envOption {
	return func(c *config.Config, _ *Options) {
		for tok, role := range tokens {
			c.Server.Tokens = append(c.Server.Tokens, config.ServerToken{Name: role + "-token", Role: role, SHA256: HashToken(tok)})
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

func (r response) build(t *testing.T) *Build {
	t.Helper()
	var b Build
	r.json(t, &b)
	return &b
}

// errorCode reads the code of a JSON error body, failing unless the body
// is one.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var body struct {
		Error apiError `json:"error"`
	}
	require.Equal(t, "application/json", r.header.Get("Content-Type"), string(r.body))
	r.json(t, &body)
	require.NotEmpty(t, body.Error.Message, string(r.body))
	return body.Error.Code
}

func (e *testEnv) do(method, path, token string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
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
	require.NoError(e.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// waitState polls a build until it is in state, failing after 10 s.
func (e *testEnv) waitState(id string, want State) *Build {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := e.svc.db.get(context.Background(), id)
		require.NoError(e.t, err)
		if b.State == want {
			return b
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("build %s is %s, not %s: %+v", id, b.State, want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fixtureRecipe is the fixture recipe document for tag, as JSON (the
// repository need not exist: the fake builder does not fetch).
func fixtureRecipe(t *testing.T, tag string) json.RawMessage {
	t.Helper()
	repo := &sample.Repo{Tag: tag, URL: "file:///srv/git/fixture.git", Commit: strings.Repeat("a", 40), ProxySHA: strings.Repeat("b", 40)}
	text, err := sample.RenderRecipe(repo, "http://127.0.0.1:1/envoy/", strings.Repeat("c", 64), config.DefaultRegistryAddr)
	require.NoError(t, err)
	return yamlToJSON(t, text)
}

func yamlToJSON(t *testing.T, text string) json.RawMessage {
	t.Helper()
	var doc any
	require.NoError(t, yaml.Unmarshal([]byte(text), &doc))
	data, err := json.Marshal(doc)
	require.NoError(t, err)
	return data
}
