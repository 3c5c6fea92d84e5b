package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --log-level and --log-format take only what they list, and say so.
func TestLogFlags(t *testing.T) {
	_, _, err := runRecipesCmd(t, "", "--log-level", "loud", "recipes", "list")
	assert.ErrorContains(t, err, `invalid argument "loud" for "--log-level" flag: "loud" is not one of trace, debug, info, warn, error`)
	_, _, err = runRecipesCmd(t, "", "--log-format", "xml", "recipes", "list")
	assert.ErrorContains(t, err, `invalid argument "xml" for "--log-format" flag: "xml" is not one of text, json`)
	for _, lvl := range logLevels {
		_, _, err = runRecipesCmd(t, "", "--log-level", lvl, "--log-format", "json", "recipes", "list")
		assert.NoError(t, err, lvl)
	}
	out, _, err := runRecipesCmd(t, "", "recipes", "list", "--help")
	require.NoError(t, err)
	assert.Contains(t, out, "log level: trace, debug, info, warn, error")
}

// recipes validate takes files as arguments or with -f, as build does, and
// prints its findings in every format.
func TestRecipesValidateFileFlagAndFormats(t *testing.T) {
	testdata := filepath.Join("..", "..", "recipes", "testdata")
	good := filepath.Join(testdata, "patched", "recipe.yaml")
	bad := filepath.Join(testdata, "invalid.yaml")

	out, _, err := runRecipesCmd(t, "", "recipes", "validate", "-f", good)
	require.NoError(t, err)
	assert.Contains(t, out, good+": ok: istio@1.24.2 sha256:")

	out, _, err = runRecipesCmd(t, "", "recipes", "validate", "-f", good, "-f", bad, "-o", "json")
	assert.EqualError(t, err, "1 of 2 recipe files are invalid")
	var res []struct {
		File     string
		Valid    bool
		ID       string
		Problems []struct {
			Line    int
			Field   string
			Message string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Len(t, res, 2)
	assert.True(t, res[0].Valid)
	assert.Equal(t, "istio@1.24.2", res[0].ID)
	assert.False(t, res[1].Valid)
	require.NotEmpty(t, res[1].Problems)
	found := false
	for _, p := range res[1].Problems {
		if p.Field == "spec.inputs.envoy.sha256" {
			found = true
			assert.Equal(t, 20, p.Line)
			assert.Equal(t, "must be 64 lowercase hex digits", p.Message)
		}
	}
	assert.True(t, found, "%+v", res[1].Problems)

	out, _, err = runRecipesCmd(t, "", "recipes", "validate", bad, "-o", "csv")
	assert.Error(t, err)
	assert.Contains(t, out, "FILE,STATUS,ID,DIGEST,LINE,FIELD,MESSAGE\n")
	assert.Contains(t, out, bad+",invalid,,,20,spec.inputs.envoy.sha256,must be 64 lowercase hex digits\n")

	// A malformed file names the line of the fault.
	file := filepath.Join(t.TempDir(), "broken.yaml")
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, append(data, []byte("status\n")...), 0o644))
	lines := 1
	for _, b := range data {
		if b == '\n' {
			lines++
		}
	}
	out, _, err = runRecipesCmd(t, "", "recipes", "validate", "-f", file)
	assert.Error(t, err)
	assert.Contains(t, out, file+":"+strconv.Itoa(lines)+": invalid YAML: ")

	_, _, err = runRecipesCmd(t, "", "recipes", "validate")
	assert.ErrorContains(t, err, "name the recipe files to check")
}
