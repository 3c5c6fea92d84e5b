package audit_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
)

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func get(t *testing.T, srv *httptest.Server, path string, q url.Values) (*http.Response, []byte) {
	t.Helper()
	u := srv.URL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestHandler(t *testing.T) {
	w := newWorld(t)
	s := w.seed()
	srv := httptest.NewServer(audit.Handler(w.auditor()))
	defer srv.Close()

	resp, body := get(t, srv, "/v1/audit/images", url.Values{"repository": {"demo/*"}, "version": {"1.0.0"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var imgs audit.ImagesResult
	require.NoError(t, json.Unmarshal(body, &imgs))
	assert.Equal(t, []string{"demo/pilot:1.0.0", "demo/proxyv2:1.0.0"}, names(imgs.Images))

	resp, body = get(t, srv, "/v1/audit/images", url.Values{"format": {"csv"}, "commit": {commit2}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "REPOSITORY", rows[0][0])
	assert.Equal(t, []string{"demo/pilot", "1.1.0", s.pilot2.String()}, rows[1][:3])

	resp, body = get(t, srv, "/v1/audit/show", url.Values{"image": {"demo/pilot:1.0.0"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var d audit.Detail
	require.NoError(t, json.Unmarshal(body, &d))
	assert.Equal(t, commit1, d.Provenance.Commit())

	resp, body = get(t, srv, "/v1/audit/verify", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "0", resp.Header.Get("Audit-Findings"))
	var rep audit.Report
	require.NoError(t, json.Unmarshal(body, &rep))
	assert.Empty(t, rep.Findings)

	resp, body = get(t, srv, "/v1/audit/uses", url.Values{"module": {"github.com/google/uuid@v1.6.0"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var uses audit.UsesResult
	require.NoError(t, json.Unmarshal(body, &uses))
	require.Len(t, uses.Uses, 1)
	assert.Equal(t, s.pilot1.String(), uses.Uses[0].Digest)

	resp, body = get(t, srv, "/v1/audit/diff", url.Values{"a": {"demo/pilot:1.0.0"}, "b": {"demo/pilot:1.1.0"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var diff audit.Diff
	require.NoError(t, json.Unmarshal(body, &diff))
	assert.NotEmpty(t, diff.Modules)

	resp, body = get(t, srv, "/v1/audit/ledger", url.Values{"repository": {"demo/proxyv2"}, "format": {"csv"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	rows, err = csv.NewReader(bytes.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "push", rows[1][3])

	// A foreign image: verify's findings say so in a header too.
	foreign, err := random.Image(64, 1)
	require.NoError(t, err)
	w.push("other/tool", "1", foreign)
	resp, _ = get(t, srv, "/v1/audit/verify", nil)
	assert.Equal(t, "1", resp.Header.Get("Audit-Findings"))

	for _, tc := range []struct {
		path   string
		q      url.Values
		status int
		code   string
	}{
		{"/v1/audit/show", nil, 400, "bad-request"},
		{"/v1/audit/show", url.Values{"image": {"docker.io/library/golang:1.23"}}, 400, "bad-request"},
		{"/v1/audit/show", url.Values{"image": {"demo/pilot:9.9.9"}}, 404, "not-found"},
		{"/v1/audit/uses", nil, 400, "bad-request"},
		{"/v1/audit/uses", url.Values{"module": {"a"}, "package": {"b"}}, 400, "bad-request"},
		{"/v1/audit/diff", url.Values{"a": {"demo/pilot:1.0.0"}}, 400, "bad-request"},
		{"/v1/audit/ledger", url.Values{"since": {"yesterday"}}, 400, "bad-request"},
		{"/v1/audit/ledger", url.Values{"limit": {"-1"}}, 400, "bad-request"},
		{"/v1/audit/images", url.Values{"commit": {"zz"}}, 400, "bad-request"},
		{"/v1/audit/images", url.Values{"format": {"xml"}}, 400, "bad-request"},
		{"/v1/audit/nothing", nil, 404, "not-found"},
	} {
		resp, body := get(t, srv, tc.path, tc.q)
		assert.Equal(t, tc.status, resp.StatusCode, "%s %v: %s", tc.path, tc.q, body)
		var e apiError
		require.NoError(t, json.Unmarshal(body, &e), "%s", body)
		assert.Equal(t, tc.code, e.Error.Code, "%s %v", tc.path, tc.q)
		assert.NotEmpty(t, e.Error.Message)
	}

	// Read-only.
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, err := http.NewRequest(m, srv.URL+"/v1/audit/ledger", strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var e apiError
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		assert.Equal(t, "method-not-allowed", e.Error.Code)
		assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	}
}
