package service

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/store"
)

// loadOpenAPI loads api/openapi.yaml with kin-openapi and validates it as
// an OpenAPI 3 document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join("..", "api", "openapi.yaml"))
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context), "api/openapi.yaml is not a valid OpenAPI document")
	return doc
}

// auditQueries are the queries audit.Handler serves under /v1/audit/.
var auditQueries = []string{"images", "show", "verify", "uses", "diff", "ledger"}

// Every route the service registers is in api/openapi.yaml, and every
// operation there is a route; the audit routes are one route of the
// service's, one path per query in the document.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	auditPaths := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		if q, ok := strings.CutPrefix(path, "/v1/audit/"); ok {
			auditPaths[q] = true
			path = "/v1/audit/{query}"
		}
		for m := range item.Operations() {
			documented = append(documented, m+" "+path)
		}
	}
	documented = dedupe(documented)
	for _, q := range auditQueries {
		assert.True(t, auditPaths[q], "/v1/audit/%s is not documented", q)
	}
	assert.Len(t, auditPaths, len(auditQueries))

	e := newEnv(t, func(_ *config.Config, o *Options) { o.AuditHandler = http.NotFoundHandler() })
	wildcard := regexp.MustCompile(`\{(\w+)\.\.\.\}`)
	var served []string
	for _, r := range e.svc.Routes() {
		served = append(served, r.Method+" "+wildcard.ReplaceAllString(r.Pattern, "{$1}"))
	}
	sort.Strings(served)
	assert.Equal(t, documented, served)
}

func dedupe(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// OpenAPICheck sends requests to a real service and checks each request and
// response against api/openapi.yaml with kin-openapi's openapi3filter:
// the status must be documented, and the headers and body must match its
// schema. It is exported for the tests of package service_test, which run
// `sailmaker serve` with real builds.
type OpenAPICheck struct {
	t      *testing.T
	base   string
	router routers.Router
	// seen counts the operations and statuses checked.
	seen map[string]bool
}

func newAPICheck(t *testing.T, doc *openapi3.T, base string) *OpenAPICheck {
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return &OpenAPICheck{t: t, base: base, router: router, seen: map[string]bool{}}
}

// call sends the request; validRequest says the request itself is meant to
// follow the document (deliberately bad ones are not checked).
func (c *OpenAPICheck) Call(method, path, token string, body []byte, validRequest bool, headers ...string) (int, []byte, http.Header) {
	c.t.Helper()
	newReq := func() *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, c.base+path, rd)
		require.NoError(c.t, err)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return req
	}
	resp, err := http.DefaultClient.Do(newReq())
	require.NoError(c.t, err)
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(c.t, err)

	req := newReq()
	route, params, err := c.router.FindRoute(req)
	require.NoError(c.t, err, "%s %s is not in api/openapi.yaml", method, path)
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if validRequest {
		require.NoError(c.t, openapi3filter.ValidateRequest(context.Background(), in), "request %s %s", method, path)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(data)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	assert.NoError(c.t, openapi3filter.ValidateResponse(context.Background(), out), "response %d to %s %s: %s", resp.StatusCode, method, path, data)
	c.seen[route.Operation.OperationID+" "+http.StatusText(resp.StatusCode)] = true
	return resp.StatusCode, data, resp.Header
}

// The service's real answers, to every route, in success and in error,
// are what api/openapi.yaml says they are.
func TestResponsesMatchOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	reg := testenv.Registry(t)
	const secret = "webhook-secret"
	tokens := map[string]string{"smk_admin": "admin", "smk_auditor": "auditor"}
	e := newEnv(t, withTokens(tokens), withPool(t, &fakeFleet{down: map[string]bool{}}, 2), func(cfg *config.Config, o *Options) {
		cfg.Registry = reg.Config.Registry
		// The inline fixture recipe names its images in the default registry.
		cfg.Registry.Allow = []string{config.DefaultRegistryAddr}
		cfg.Server.Webhook.Secret = secret
		a, err := audit.New(cfg, audit.WithLedger(o.Store), audit.WithCacheDir(""))
		require.NoError(t, err)
		o.AuditHandler = audit.Handler(a)
	})
	c := newAPICheck(t, doc, e.srv.URL)
	ctx := context.Background()

	// Two images another client pushed, one recorded in the ledger.
	var digests []string
	for _, tag := range []string{"1", "2"} {
		img, err := random.Image(256, 1)
		require.NoError(t, err)
		ref, err := name.NewTag(reg.Config.Registry.Address+"/fixture/tool:"+tag, name.Insecure)
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img))
		d, err := img.Digest()
		require.NoError(t, err)
		digests = append(digests, d.String())
	}
	require.NoError(t, e.st.Append(ctx, store.Entry{Actor: "alice", Action: store.ActionPush, Repository: "fixture/tool", Tag: "1", NewDigest: digests[0]}))

	status, _, _ := c.Call("GET", "/healthz", "", nil, true)
	assert.Equal(t, 200, status)
	status, _, _ = c.Call("GET", "/readyz", "", nil, true)
	assert.Equal(t, 200, status)
	status, _, _ = c.Call("GET", "/metrics", "", nil, true)
	assert.Equal(t, 200, status)

	// Workers: listed for auditors, drained (and taken back) by admins.
	status, body, _ := c.Call("GET", "/v1/workers", "smk_auditor", nil, true)
	require.Equal(t, 200, status, "%s", body)
	status, _, _ = c.Call("POST", "/v1/workers/bk-1/drain?wait=0s", "smk_admin", nil, true)
	assert.Equal(t, 200, status)
	status, _, _ = c.Call("POST", "/v1/workers/bk-1/drain?undo=true", "smk_admin", nil, true)
	assert.Equal(t, 200, status)
	status, _, _ = c.Call("POST", "/v1/workers/nosuch/drain", "smk_admin", nil, true)
	assert.Equal(t, 404, status)
	status, _, _ = c.Call("POST", "/v1/workers/bk-1/drain", "smk_auditor", nil, true)
	assert.Equal(t, 403, status)

	// Builds: queued, the same again, bad requests.
	envoy := strings.Repeat("0a", 32)
	submit, _ := json.Marshal(map[string]any{"recipe": "istio@1.24.2", "envoySHA256": envoy})
	status, body, _ = c.Call("POST", "/v1/builds", "smk_admin", submit, true)
	require.Equal(t, 202, status, "%s", body)
	var first Build
	require.NoError(t, json.Unmarshal(body, &first))
	status, _, _ = c.Call("POST", "/v1/builds", "smk_admin", submit, true)
	assert.Equal(t, 200, status)
	inline, _ := json.Marshal(map[string]any{"recipe": fixtureRecipe(t, "1.0.0")})
	status, body, _ = c.Call("POST", "/v1/builds", "smk_admin", inline, true)
	require.Equal(t, 202, status, "%s", body)
	var second Build
	require.NoError(t, json.Unmarshal(body, &second))
	status, _, _ = c.Call("POST", "/v1/builds", "smk_admin", []byte(`{"recipe": "nosuch@1"}`), true)
	assert.Equal(t, 422, status)
	status, _, _ = c.Call("POST", "/v1/builds", "smk_admin", []byte(`{"recipe": {"kind": "Recipe"}}`), true)
	assert.Equal(t, 422, status)
	status, _, _ = c.Call("POST", "/v1/builds", "smk_admin", []byte(`{"recipe": `), false)
	assert.Equal(t, 400, status)
	status, _, _ = c.Call("POST", "/v1/builds", "smk_auditor", submit, true)
	assert.Equal(t, 403, status)
	status, _, _ = c.Call("POST", "/v1/builds", "", submit, true)
	assert.Equal(t, 401, status)

	// The first build runs and succeeds with its images; the second is
	// cancelled.
	e.run.waitStarted(t)
	status, _, _ = c.Call("POST", "/v1/builds/"+second.ID+"/cancel", "smk_admin", nil, true)
	assert.Equal(t, 202, status)
	status, _, _ = c.Call("POST", "/v1/builds/"+second.ID+"/cancel", "smk_admin", nil, true)
	assert.Equal(t, 409, status)
	e.run.finish()
	e.waitState(first.ID, StateSucceeded)

	status, body, _ = c.Call("GET", "/v1/builds/"+first.ID, "smk_auditor", nil, true)
	require.Equal(t, 200, status)
	var done Build
	require.NoError(t, json.Unmarshal(body, &done))
	assert.NotEmpty(t, done.Images, "a build with its images is checked")
	status, _, _ = c.Call("GET", "/v1/builds?state=succeeded,cancelled&limit=10", "smk_auditor", nil, true)
	assert.Equal(t, 200, status)
	status, _, _ = c.Call("GET", "/v1/builds?state=bogus", "smk_auditor", nil, false)
	assert.Equal(t, 400, status)
	status, _, _ = c.Call("GET", "/v1/builds/20250102-150405-00000000", "smk_auditor", nil, true)
	assert.Equal(t, 404, status)
	status, _, _ = c.Call("GET", "/v1/builds/"+first.ID+"/log?follow=false", "smk_auditor", nil, true)
	assert.Equal(t, 200, status)
	status, _, _ = c.Call("GET", "/v1/builds/"+first.ID+"/log", "smk_auditor", nil, true)
	assert.Equal(t, 200, status, "a finished build's log ends")

	// The webhook: signed, and not.
	ping := []byte(`{"zen": "Keep it logically awesome.", "hook_id": 1}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(ping)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	status, _, _ = c.Call("POST", "/v1/hooks/upstream-tag", "", ping, true, "X-Hub-Signature-256", sig, "X-GitHub-Event", "ping", "X-GitHub-Delivery", "d-1")
	assert.Equal(t, 200, status)
	status, _, _ = c.Call("POST", "/v1/hooks/upstream-tag", "", ping, true, "X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64), "X-GitHub-Event", "ping", "X-GitHub-Delivery", "d-2")
	assert.Equal(t, 401, status)

	// Every audit query, in success and in error.
	img1 := url.QueryEscape("fixture/tool:1")
	img2 := url.QueryEscape("fixture/tool:2")
	for _, q := range []struct {
		path   string
		status int
	}{
		{"/v1/audit/images", 200},
		{"/v1/audit/images?repository=fixture/*&format=csv", 200},
		{"/v1/audit/images?commit=xyz", 400},
		{"/v1/audit/show?image=" + img1, 200},
		{"/v1/audit/show?image=" + url.QueryEscape("fixture/none:1"), 404},
		{"/v1/audit/show?image=" + url.QueryEscape("docker.io/library/golang:1.23"), 400},
		{"/v1/audit/verify", 200},
		{"/v1/audit/uses?module=github.com/google/uuid", 200},
		{"/v1/audit/uses?package=libssl3", 200},
		{"/v1/audit/diff?a=" + img1 + "&b=" + img2, 200},
		{"/v1/audit/ledger?repository=fixture/tool&limit=5", 200},
		{"/v1/audit/ledger?since=yesterday", 400},
	} {
		status, body, _ := c.Call("GET", q.path, "smk_auditor", nil, q.status < 400)
		assert.Equal(t, q.status, status, "%s: %s", q.path, body)
	}
	status, _, _ = c.Call("GET", "/v1/audit/images", "", nil, true)
	assert.Equal(t, 401, status)

	// Every operation was called.
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			found := false
			for k := range c.seen {
				if strings.HasPrefix(k, op.OperationID+" ") {
					found = true
				}
			}
			assert.True(t, found, "%s was not checked", op.OperationID)
		}
	}
}
