package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/service"
)

func TestTokenNew(t *testing.T) {
	out, errOut, err := runRecipesCmd(t, "", "token", "new", "--name", "alice", "--role", "maintainer")
	require.NoError(t, err)
	token := strings.TrimSpace(out)
	assert.True(t, strings.HasPrefix(token, service.TokenPrefix), token)
	assert.Contains(t, errOut, `- {name: "alice", role: maintainer, sha256: `+service.HashToken(token)+`}`)
	again, _, err := runRecipesCmd(t, "", "token", "new", "--name", "alice", "--role", "maintainer")
	require.NoError(t, err)
	assert.NotEqual(t, token, strings.TrimSpace(again), "every token is fresh")

	_, _, err = runRecipesCmd(t, "", "token", "new", "--name", "x", "--role", "root")
	assert.ErrorContains(t, err, `--role "root"`)
	_, _, err = runRecipesCmd(t, "", "token", "new", "--role", "admin")
	assert.ErrorContains(t, err, "name")
}

// A service without tokens listens on loopback only; it says so before
// starting anything.
func TestServeRefusesOpenNonLoopback(t *testing.T) {
	_, _, err := runRecipesCmd(t, "", "serve", "--listen", "0.0.0.0:0")
	assert.ErrorContains(t, err, "refusing to listen on 0.0.0.0:0 without tokens")
}

func TestServiceCommandsNeedAServer(t *testing.T) {
	t.Setenv("SAILMAKER_SERVER", "")
	_, _, err := runRecipesCmd(t, "", "builds", "list")
	assert.ErrorContains(t, err, "no build service given")
	_, _, err = runRecipesCmd(t, "", "build", "istio@1.24.2", "--server", "http://127.0.0.1:1", "--envoy-file", "envoy.tar.gz")
	assert.ErrorContains(t, err, "--envoy-file works only for local builds")
	_, _, err = runRecipesCmd(t, "", "build", "istio@1.24.2", "--server", "127.0.0.1:1")
	assert.ErrorContains(t, err, "must be http(s)://")
}
