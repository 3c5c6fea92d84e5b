package main

import (
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBinaryDepsImportNoTesting holds the project rule that nothing importing
// testing is linked into the sailmaker binary: testing (or testing/...) must
// not be among the dependencies of this package, as `go list -deps` (the go
// command go test puts first on PATH) gives them for the host platform.
// Test helpers (internal/fixture, internal/testenv, debtest, apttest) import
// testing, so binary code must never import them (nor net/http/httptest,
// test machinery too); the demo uses
// internal/sample instead.
func TestBinaryDepsImportNoTesting(t *testing.T) {
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "finding the go command to list the binary's dependencies")
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps .: %s", stderr.String())

	const self = "github.com/sailmaker/sailmaker/cmd/sailmaker"
	isTesting := func(p string) bool {
		return p == "testing" || strings.HasPrefix(p, "testing/") || p == "net/http/httptest"
	}
	deps := map[string]bool{}
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		deps[f[0]] = true
		if isTesting(f[0]) {
			continue
		}
		for _, imp := range f[1:] {
			if isTesting(imp) {
				bad = append(bad, f[0]+" imports "+imp)
			}
		}
	}
	// The listing is of the binary, not empty or of something else.
	require.True(t, deps[self], "go list -deps . lists %s", self)
	var linked []string
	for p := range deps {
		if isTesting(p) {
			linked = append(linked, p)
		}
	}
	sort.Strings(linked)
	sort.Strings(bad)
	require.Empty(t, linked, "the sailmaker binary links %v: %s; move what the binary needs out of the test helper (as internal/sample is out of internal/fixture)",
		linked, strings.Join(bad, "; "))
}
