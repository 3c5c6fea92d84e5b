package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/recipes"
)

const hookSecret = "hook-s3cret-value"

func (e *testEnv) hook(body any, headers ...string) response {
	e.t.Helper()
	data, err := json.Marshal(body)
	require.NoError(e.t, err)
	return e.do("POST", "/v1/hooks/upstream-tag", "", data, append([]string{SignatureHeader, Sign(hookSecret, data)}, headers...)...)
}

func (e *testEnv) builds() []Build {
	e.t.Helper()
	var list struct{ Builds []Build }
	e.do("GET", "/v1/builds", "", nil).json(e.t, &list)
	return list.Builds
}

func githubPayload(repoURL, ref, refType string) map[string]any {
	return map[string]any{
		"ref": ref, "ref_type": refType, "master_branch": "main",
		"repository": map[string]any{"full_name": "istio/istio", "clone_url": repoURL + ".git", "html_url": "https://example.invalid/istio/istio"},
		"sender":     map[string]any{"login": "release-bot"},
	}
}

// The webhook derives the recipe of a new upstream tag (the real
// recipes.New on a fixture repository), stores it and queues its build,
// only with a valid signature and a matching tag, once per delivery.
func TestWebhook(t *testing.T) {
	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoySum := strings.Repeat("e", 64)
	var failing atomic.Bool
	e := newEnv(t, func(c *config.Config, o *Options) {
		c.Server.Webhook = config.WebhookConfig{
			Secret:      hookSecret,
			Repos:       []string{repo.URL},
			TagPattern:  config.DefaultTagPattern,
			Go:          "1.23.4",
			EnvoyURL:    "http://artifacts.internal/envoy-${PROXY_REPO_SHA}.tar.gz",
			EnvoySHA256: map[string]string{repo.ProxySHA: envoySum},
		}
		o.NewRecipe = func(ctx context.Context, no recipes.NewOptions) (*recipes.Recipe, error) {
			if failing.Load() {
				return nil, errors.New("fetching tag 1.0.0: connection refused")
			}
			return recipes.New(ctx, no)
		}
	})
	minimal := map[string]any{"repo": repo.URL, "tag": "1.0.0"}

	// No, a wrong, or a stale signature: 401 and nothing queued.
	data, _ := json.Marshal(minimal)
	r := e.do("POST", "/v1/hooks/upstream-tag", "", data, SailmakerDeliveryHeader, "d0")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "unauthorized", r.errorCode(t))
	r = e.do("POST", "/v1/hooks/upstream-tag", "", data, SailmakerDeliveryHeader, "d0", SignatureHeader, Sign("another secret", data))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	r = e.do("POST", "/v1/hooks/upstream-tag", "", data, SailmakerDeliveryHeader, "d0", SignatureHeader, Sign(hookSecret, []byte(`{"repo":"x","tag":"1.0.0"}`)))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	r = e.do("POST", "/v1/hooks/upstream-tag", "", data, SailmakerDeliveryHeader, "d0", SignatureHeader, strings.TrimPrefix(Sign(hookSecret, data), "sha256="))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Empty(t, e.builds())

	// A valid delivery queues the build of the derived recipe.
	r = e.hook(minimal, SailmakerDeliveryHeader, "d1")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	var resp WebhookResponse
	r.json(t, &resp)
	assert.Equal(t, "queued", resp.Status)
	assert.Equal(t, "istio@1.0.0", resp.Recipe)
	require.NotNil(t, resp.Build)
	b := resp.Build
	assert.Equal(t, SourceWebhook, b.Source)
	assert.Equal(t, api.Trigger{Actor: "webhook", Kind: "webhook", DeliveryID: "d1"}, b.Trigger)
	stored, err := os.ReadFile(e.svc.storedRecipePath("istio@1.0.0"))
	require.NoError(t, err)
	rec, err := recipes.Parse("stored", stored, recipes.WithRegistry(e.cfg.Registry.Address))
	require.NoError(t, err)
	assert.Equal(t, b.RecipeDigest, rec.Digest())
	assert.Equal(t, repo.Commit, rec.Spec.Source.Commit)
	assert.Equal(t, repo.URL, rec.Spec.Source.Git)
	assert.Equal(t, "1.23.4", rec.Spec.Toolchain.Go)
	assert.Equal(t, e.cfg.Registry.Address+"/builder/go1.23.4:1", rec.Spec.Toolchain.Builder)
	assert.Equal(t, envoySum, rec.Spec.Inputs.Envoy.SHA256)
	assert.False(t, rec.Spec.Inputs.Envoy.Unconfirmed)
	assert.Equal(t, "http://artifacts.internal/envoy-"+repo.ProxySHA+".tar.gz", rec.Spec.Inputs.Envoy.URL)
	e.run.waitStarted(t)
	e.waitState(b.ID, StateBuilding)

	// A replayed delivery is ignored.
	r = e.hook(minimal, SailmakerDeliveryHeader, "d1")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &resp)
	assert.Equal(t, "duplicate", resp.Status)
	assert.Equal(t, b.ID, resp.Build.ID)

	// GitHub's create and push events for the same tag join the build.
	r = e.hook(githubPayload(repo.URL, "1.0.0", "tag"), GitHubEventHeader, "create", GitHubDeliveryHeader, "g1")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r.json(t, &resp)
	assert.Equal(t, "joined", resp.Status)
	assert.Equal(t, b.ID, resp.Build.ID)
	r = e.hook(githubPayload(repo.URL, "refs/tags/1.0.0", ""), GitHubEventHeader, "push", GitHubDeliveryHeader, "g2")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r.json(t, &resp)
	assert.Equal(t, "joined", resp.Status)

	// Acknowledged and ignored: other tags, branches, repositories, events.
	for _, c := range []struct {
		name    string
		body    any
		headers []string
		status  string
	}{
		{"tag not matching", map[string]any{"repo": repo.URL, "tag": "1.0.0-rc.1"}, []string{SailmakerDeliveryHeader, "i1"}, "ignored"},
		{"other repository", map[string]any{"repo": "https://example.invalid/other.git", "tag": "1.0.0"}, []string{SailmakerDeliveryHeader, "i2"}, "ignored"},
		{"branch push", githubPayload(repo.URL, "refs/heads/main", ""), []string{GitHubEventHeader, "push", GitHubDeliveryHeader, "i3"}, "ignored"},
		{"branch create", githubPayload(repo.URL, "main", "branch"), []string{GitHubEventHeader, "create", GitHubDeliveryHeader, "i4"}, "ignored"},
		{"other event", githubPayload(repo.URL, "1.0.0", "tag"), []string{GitHubEventHeader, "issues", GitHubDeliveryHeader, "i5"}, "ignored"},
		{"ping", map[string]any{"zen": "Keep it logically awesome."}, []string{GitHubEventHeader, "ping", GitHubDeliveryHeader, "i6"}, "pong"},
	} {
		r = e.hook(c.body, c.headers...)
		require.Equal(t, http.StatusOK, r.status, "%s: %s", c.name, r.body)
		r.json(t, &resp)
		assert.Equal(t, c.status, resp.Status, c.name)
	}

	// Bad requests, even signed.
	assert.Equal(t, "bad_request", e.hook(minimal).errorCode(t), "no delivery id")
	assert.Equal(t, "bad_request", e.hook(map[string]any{"repo": repo.URL, "tag": "1.0.0", "extra": 1}, SailmakerDeliveryHeader, "b1").errorCode(t))
	assert.Equal(t, "bad_request", e.hook(map[string]any{"repo": repo.URL}, SailmakerDeliveryHeader, "b2").errorCode(t))
	assert.Equal(t, "bad_request", e.hook("not an object", SailmakerDeliveryHeader, "b3").errorCode(t))

	// Deriving the recipe fails (upstream unreachable): 502, and the same
	// delivery may come again.
	failing.Store(true)
	r = e.hook(map[string]any{"repo": repo.URL, "tag": "1.0.0"}, SailmakerDeliveryHeader, "f1")
	assert.Equal(t, http.StatusBadGateway, r.status)
	assert.Equal(t, "upstream_error", r.errorCode(t))
	failing.Store(false)
	r = e.hook(map[string]any{"repo": repo.URL, "tag": "1.0.0"}, SailmakerDeliveryHeader, "f1")
	assert.Equal(t, http.StatusAccepted, r.status, string(r.body))

	require.Len(t, e.builds(), 1, "one build for all of it")
	assert.NotContains(t, e.logs.String(), hookSecret)

	metrics := string(e.do("GET", "/metrics", "", nil).body)
	assert.Contains(t, metrics, `sailmaker_webhook_deliveries_total{outcome="unauthorized"} 4`)
	assert.Contains(t, metrics, `sailmaker_webhook_deliveries_total{outcome="duplicate"} 1`)
}

func TestWebhookWithoutSecret(t *testing.T) {
	e := newEnv(t)
	data := []byte(`{"repo":"https://github.com/istio/istio.git","tag":"1.25.0"}`)
	r := e.do("POST", "/v1/hooks/upstream-tag", "", data, SailmakerDeliveryHeader, "x", SignatureHeader, Sign("", data))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, string(r.body), "no secret configured")
	assert.Empty(t, e.builds())
}

func TestSignature(t *testing.T) {
	body := []byte(`{"a":1}`)
	sig := Sign("k", body)
	assert.Regexp(t, `^sha256=[0-9a-f]{64}$`, sig)
	assert.True(t, validSignature("k", sig, body))
	assert.False(t, validSignature("k", sig, []byte(`{"a":2}`)))
	assert.False(t, validSignature("other", sig, body))
	assert.False(t, validSignature("", Sign("", body), body))
	assert.False(t, validSignature("k", "sha1="+strings.TrimPrefix(sig, "sha256="), body))
	assert.False(t, validSignature("k", "sha256=zz", body))
	assert.False(t, validSignature("k", "", body))
}

func TestMatchRepo(t *testing.T) {
	cfg := []string{"https://github.com/istio/istio.git"}
	assert.Equal(t, cfg[0], matchRepo(cfg, []string{"https://github.com/istio/istio"}))
	assert.Equal(t, cfg[0], matchRepo(cfg, []string{"x", "https://github.com/Istio/Istio.git/"}))
	assert.Empty(t, matchRepo(cfg, []string{"https://github.com/istio/istio-fork.git"}))
	assert.Empty(t, matchRepo(nil, []string{"https://github.com/istio/istio.git"}))
}
