package service

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/recipes"
)

// A recipe file sent inline is the same recipe (digest) the service parses,
// scalars kept as written.
func TestRecipeDocument(t *testing.T) {
	repo := &fixture.Repo{Tag: "1.20", URL: "file:///srv/git/fixture.git", Commit: strings.Repeat("a", 40), ProxySHA: strings.Repeat("b", 40)}
	text, err := fixture.RenderRecipe(repo, "http://127.0.0.1:1/envoy/", strings.Repeat("c", 64), "127.0.0.1:5000")
	require.NoError(t, err)
	// Unquoted scalars that a YAML-to-JSON conversion through values would
	// change: a version 1.20 (a float), a mode 0644 (an octal int).
	text = strings.Replace(text, `version: "1.20"`, `version: 1.20`, 1)
	text = strings.Replace(text, `mode: "0644"`, `mode: 0644`, 1)
	// Packages need a release MAJOR.MINOR.PATCH: this recipe has none.
	text = text[:strings.Index(text, "  packages:\n")]
	require.Contains(t, text, "version: 1.20\n")
	require.Contains(t, text, "mode: 0644\n")
	file := filepath.Join(t.TempDir(), "r.yaml")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
	want, err := recipes.Load(file)
	require.NoError(t, err)

	doc, err := RecipeDocument([]byte(text))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(doc, &m))
	assert.Equal(t, "1.20", m["metadata"].(map[string]any)["version"])
	got, err := recipes.Parse("inline", doc)
	require.NoError(t, err)
	assert.Equal(t, want.Digest(), got.Digest())
	assert.Equal(t, "0644", got.Spec.Images[1].Files[0].Mode, "proxyv2's bootstrap template")

	_, err = RecipeDocument([]byte("a: [1, 2\n"))
	assert.Error(t, err)
	_, err = RecipeDocument([]byte(""))
	assert.Error(t, err)
	_, err = RecipeDocument([]byte("a: 1\na: 2\n"))
	assert.Error(t, err)
}

// The client submits, reads, lists and cancels, and turns error bodies into
// APIErrors.
func TestClient(t *testing.T) {
	const tok = "smk_client-test"
	e := newEnv(t, withTokens(map[string]string{tok: "maintainer"}))
	c, err := NewClient(e.srv.URL+"/", tok)
	require.NoError(t, err)
	ctx := context.Background()
	id, _ := json.Marshal("istio@1.24.2")
	b, created, err := c.Submit(ctx, SubmitRequest{Recipe: id})
	require.NoError(t, err)
	assert.True(t, created)
	again, created, err := c.Submit(ctx, SubmitRequest{Recipe: id})
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, b.ID, again.ID)
	e.run.waitStarted(t)
	list, err := c.List(ctx, ListFilter{States: []State{StateBuilding, StateFetching}, Recipe: "istio", Since: time.Now().Add(-time.Hour), Limit: 5})
	require.NoError(t, err)
	require.Len(t, list, 1)
	got, err := c.Cancel(ctx, b.ID)
	require.NoError(t, err)
	assert.Equal(t, StateCancelled, got.State)

	_, err = c.Get(ctx, "nope")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusNotFound, ae.Status)
	assert.Equal(t, "not_found", ae.Code)
	_, _, err = c.Submit(ctx, SubmitRequest{Recipe: json.RawMessage(`"istio@0.0.1"`)})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "unknown_recipe", ae.Code)
	bad, _ := NewClient(e.srv.URL, "smk_wrong")
	_, err = bad.List(ctx, ListFilter{})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusUnauthorized, ae.Status)

	_, err = NewClient("127.0.0.1:8080", "")
	assert.Error(t, err, "a URL needs a scheme")
}
