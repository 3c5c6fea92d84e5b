package builder

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"

	"github.com/stretchr/testify/assert"

	"github.com/sailmaker/sailmaker/attest"
)

// What the binaries report against what the recipe pins: the version,
// the commit, and -dirty/Modified only when the recipe has patches.
func TestValidationVerdict(t *testing.T) {
	const commit = "3b29ce03b426954e13559f326c529f433723b17a"
	clean := attest.ExpectedVersion{Version: "1.0.0", Revision: commit, Status: statusClean}
	patched := attest.ExpectedVersion{Version: "1.0.0", Revision: commit + dirtySuffix, Status: statusModified, Patched: true, Patches: 1}
	out := func(version, revision, status string) string {
		return `{"clientVersion": {"version": "` + version + `", "revision": "` + revision + `", "golang_version": "go1.23.4", "status": "` + status + `", "tag": "1.0.0"}}`
	}
	for _, tc := range []struct {
		name   string
		want   attest.ExpectedVersion
		stdout string
		err    error
		msg    string // "" for none
	}{
		{"as pinned", clean, out("1.0.0", commit, "Clean"), nil, ""},
		{"another version", clean, out("9.9.9", commit, "Clean"), nil, `reports version "9.9.9", the recipe's version is "1.0.0"`},
		{"another commit", clean, out("1.0.0", strings.Repeat("a", 40), "Clean"), nil, `revision "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", the recipe pins commit ` + commit},
		{"dirty without patches", clean, out("1.0.0", commit+"-dirty", "Modified"), nil, "applies no patch: the tree it was built from was modified"},
		{"patched, dirty", patched, out("1.0.0", commit+"-dirty", "Modified"), nil, ""},
		{"patched, only new files", patched, out("1.0.0", commit+"-dirty", "Clean"), nil, ""},
		{"patched, another commit", patched, out("1.0.0", strings.Repeat("b", 40)+"-dirty", "Modified"), nil, "the recipe pins commit " + commit},
		{"not istio's JSON", clean, "pilot-discovery 1.0.0\n", nil, "did not print istio's version JSON"},
		{"failed", clean, "", errors.New("exit code: 2"), "failed in the image: exit code: 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &check{image: "pilot", platform: platform{name: "linux/arm64"}, args: []string{"/usr/local/bin/pilot-discovery", "version", "-o", "json"},
				binary: &attest.BinaryCheck{}, stdout: []byte(tc.stdout), err: tc.err}
			got := c.verdict(tc.want, "p")
			if tc.msg == "" {
				assert.Empty(t, got)
				assert.Equal(t, "1.0.0", c.binary.Version)
				return
			}
			assert.Contains(t, got, "pilot linux/arm64: `/usr/local/bin/pilot-discovery version -o json`")
			assert.Contains(t, got, tc.msg)
		})
	}

	// Envoy names the PROXY_REPO_SHA it was built from.
	sha := strings.Repeat("c", 40)
	e := &check{image: "proxyv2", platform: platform{name: "linux/amd64"}, args: []string{"/usr/local/bin/envoy", "--version"}, envoy: &attest.EnvoyCheck{},
		stdout: []byte("envoy  version: " + sha + "/1.32.0-dev/Clean/RELEASE/BoringSSL\n")}
	assert.Empty(t, e.verdict(clean, sha))
	assert.Contains(t, e.verdict(clean, strings.Repeat("d", 40)), "does not name the PROXY_REPO_SHA "+strings.Repeat("d", 40))
}

// The plan's checks are indexed while the compile's status streams into
// collect (a service build died of a concurrent map read and write when
// planning got fast enough to overlap it): both take the lock, and a
// program's output reaches its check.
func TestValidationIndexWhileCollecting(t *testing.T) {
	vr := &validationRun{byName: map[string]*check{}, vertex: map[string]*check{}}
	var checks []*check
	for i := range 200 {
		checks = append(checks, &check{image: fmt.Sprintf("img%d", i), args: []string{"/bin/x", "version"}})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range checks {
			vr.index(checks[i : i+1])
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 2000 {
			vr.collect(&client.SolveStatus{Vertexes: []*client.Vertex{{Name: checks[i%len(checks)].name(), Digest: digest.FromString(fmt.Sprint(i % len(checks)))}}})
		}
	}()
	wg.Wait()
	last := checks[len(checks)-1]
	d := digest.FromString("step")
	vr.collect(&client.SolveStatus{Vertexes: []*client.Vertex{{Name: last.name(), Digest: d}}, Logs: []*client.VertexLog{{Vertex: d, Stream: 1, Data: []byte("1.0.0")}}})
	assert.Equal(t, "1.0.0", string(last.stdout))
}
