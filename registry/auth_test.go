package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/config"
)

// A registry that wants a login, and one that refuses the account given:
// sailmaker's reads send the docker config's credentials, and a refusal is
// one line naming the registry, the docker config read and how to log in,
// without the password.
func TestClientUsesDockerConfigAndExplainsRefusals(t *testing.T) {
	const user, password = "ci", "hunter2-Secret"
	var gotAuth bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		switch {
		case !ok:
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		case u == user && p == password:
			gotAuth = true
			w.WriteHeader(http.StatusNotFound)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg := config.Default()
	cfg.Registry.Address = host
	c, err := NewClient(cfg)
	require.NoError(t, err)
	ref, err := c.ParseRef(host + "/builder/go:1")
	require.NoError(t, err)
	ctx := context.Background()

	empty := t.TempDir()
	t.Setenv(DockerConfigEnv, empty)
	_, _, err = c.Resolve(ctx, ref)
	var aerr *AuthError
	require.True(t, errors.As(err, &aerr), "%v", err)
	assert.Equal(t, host, aerr.Registry)
	assert.Equal(t, http.StatusUnauthorized, aerr.Status)
	msg := err.Error()
	assert.NotContains(t, msg, "\n")
	assert.Contains(t, msg, "the registry "+host+" needs credentials")
	assert.Contains(t, msg, filepath.Join(empty, "config.json")+" ($DOCKER_CONFIG)")
	assert.Contains(t, msg, "crane auth login "+host)

	withCreds := t.TempDir()
	write := func(u, p string) {
		require.NoError(t, os.WriteFile(filepath.Join(withCreds, "config.json"),
			fmt.Appendf(nil, `{"auths": {%q: {"username": %q, "password": %q}}}`, host, u, p), 0o600))
	}
	write(user, password)
	t.Setenv(DockerConfigEnv, withCreds)
	_, ok, err := c.Resolve(ctx, ref)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.True(t, gotAuth, "the docker config's credentials were sent")

	write(user, "wrong-"+password)
	_, err = c.Image(ctx, ref)
	require.True(t, errors.As(err, &aerr), "%v", err)
	assert.Equal(t, http.StatusForbidden, aerr.Status)
	assert.Contains(t, err.Error(), "the registry "+host+" refused access with the credentials given")
	assert.NotContains(t, err.Error(), password)
}

// BuildKit's errors for a refused pull name the registry and become an
// *AuthError; others stay as they are.
func TestExplainBuildKitAuth(t *testing.T) {
	for _, tc := range []struct {
		msg, host string
		status    int
	}{
		{"failed to solve: failed to load cache key: unexpected status from HEAD request to http://127.0.0.1:5001/v2/builder/go/manifests/sha256:abc: 401 Unauthorized", "127.0.0.1:5001", 401},
		{"failed to solve: registry.example:443/builder/go@sha256:abc: failed to resolve source metadata for registry.example:443/builder/go@sha256:abc: failed to authorize: no credentials", "registry.example:443", 401},
		{"failed to solve: unexpected status from GET request to https://reg.internal/v2/x/manifests/1: 403 Forbidden", "reg.internal", 403},
	} {
		err := ExplainBuildKitAuth(errors.New(tc.msg))
		var aerr *AuthError
		require.True(t, errors.As(err, &aerr), tc.msg)
		assert.Equal(t, tc.host, aerr.Registry, tc.msg)
		assert.Equal(t, tc.status, aerr.Status, tc.msg)
		assert.True(t, strings.HasPrefix(err.Error(), tc.msg+"; the registry "+tc.host))
	}
	other := errors.New("failed to solve: process \"make\" did not complete successfully: exit code: 2")
	assert.Same(t, other, ExplainBuildKitAuth(other))
	assert.NoError(t, ExplainBuildKitAuth(nil))
}
