package main

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/testenv"
)

func TestBaseList(t *testing.T) {
	state := t.TempDir()
	out, _, err := runCLI(t, state, "base", "list", "-o", "json")
	require.NoError(t, err)
	var rows []baseEntry
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	byName := map[string]baseEntry{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, byName["base/bookworm"].Platforms)
	assert.Equal(t, "debian", byName["base/bookworm"].Flavour)
	assert.Equal(t, "distroless", byName["base/iptables"].Flavour)
	assert.Equal(t, "distroless", byName["base/distroless"].Flavour)
	assert.Equal(t, []string{"linux/amd64"}, byName["builder/go1.23.4"].Platforms)

	out, _, err = runCLI(t, state, "base", "list", "-o", "csv")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, []string{"NAME", "VERSION", "IMAGE", "FLAVOUR", "PLATFORMS", "DEBIAN", "GO", "PACKAGES"}, recs[0])
	assert.Len(t, recs, len(rows)+1)

	out, _, err = runCLI(t, state, "base", "list")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^base/iptables\s+1\s+\S+/base/iptables:1\s+distroless\s+linux/amd64,linux/arm64\s`, out)

	_, _, err = runCLI(t, state, "base", "list", "-o", "xml")
	assert.ErrorContains(t, err, `unknown output format "xml": use table, json, yaml or csv`)
	// Refused before any work: no registry is reachable here.
	_, _, err = runCLI(t, state, "base", "build", "-o", "xml")
	assert.ErrorContains(t, err, `unknown output format "xml"`)
}

// With the bases in the registry (built once per test cache), base build
// finds them: unchanged, the index digest for two platforms.
func TestBaseBuildFindsBases(t *testing.T) {
	testenv.Integration(t)
	e := testenv.Registry(t)
	bases := e.Bases(t)
	t.Setenv("SAILMAKER_REGISTRY", e.Config.Registry.Address)
	out, _, err := runCLI(t, e.Config.StateDir, "base", "build", "base/iptables", "builder/go1.23.4", "-o", "json")
	require.NoError(t, err)
	var rows []baseResult
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 2)
	assert.Equal(t, bases["base/iptables"].Digest.String(), rows[0].Digest)
	assert.Equal(t, "distroless", rows[0].Flavour)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, rows[0].Platforms)
	assert.Equal(t, "unchanged", rows[0].Status)
	assert.Equal(t, bases["builder/go1.23.4"].Digest.String(), rows[1].Digest)
	assert.Equal(t, []string{"linux/amd64"}, rows[1].Platforms)

	out, _, err = runCLI(t, e.Config.StateDir, "base", "build", "base/iptables", "-o", "yaml")
	require.NoError(t, err)
	assert.Contains(t, out, "digest: "+bases["base/iptables"].Digest.String())
	assert.Contains(t, out, "- linux/arm64")
}
