package builder

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client/llb"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
)

// The build ID read from a Go executable's ELF note is the one the go
// command reports.
func TestGoBuildID(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	ef, err := elf.Open(exe)
	require.NoError(t, err)
	defer ef.Close()
	out, err := exec.Command("go", "tool", "buildid", exe).Output()
	require.NoError(t, err)
	id := goBuildID(ef)
	assert.Equal(t, strings.TrimSpace(string(out)), id)
	assert.Contains(t, id, "/")
}

func memoCheck() (*check, map[string]probed) {
	cf := &v1.ConfigFile{}
	cf.Config.Env = []string{"PATH=/usr/bin"}
	cf.Config.User = "1337"
	cf.Config.WorkingDir = "/"
	c := &check{
		platform: platform{name: "linux/amd64", arch: "amd64"},
		base:     "registry.invalid/base@sha256:" + strings.Repeat("a", 64),
		cf:       cf,
		args:     []string{"/usr/local/bin/pilot-agent", "version", "-o", "json"},
		mounts: []fileMount{
			{to: "/usr/local/bin/pilot-agent", kind: "build", mode: 0o755},
			{to: "/usr/local/bin/envoy", kind: "input", mode: 0o755},
		},
	}
	files := map[string]probed{
		"/usr/local/bin/pilot-agent": {size: 100, content: "go:action/content"},
		"/usr/local/bin/envoy":       {size: 200, content: "sha256:" + strings.Repeat("b", 64)},
	}
	return c, files
}

// A program's memo is keyed by everything it runs with: a change to any
// of them is another key, and a file of unknown content gives none.
func TestMemoKey(t *testing.T) {
	c, files := memoCheck()
	key := c.memoKey(files)
	require.Len(t, key, 64)
	again, _ := memoCheck()
	assert.Equal(t, key, again.memoKey(files), "the same check, the same key")

	changes := map[string]func(c *check, f map[string]probed){
		"arguments": func(c *check, _ map[string]probed) { c.args = append(c.args, "-v") },
		"base":      func(c *check, _ map[string]probed) { c.base = strings.Replace(c.base, "aaaa", "aaab", 1) },
		"platform":  func(c *check, _ map[string]probed) { c.platform.name = "linux/arm64" },
		"env":       func(c *check, _ map[string]probed) { c.cf.Config.Env = []string{"PATH=/bin"} },
		"user":      func(c *check, _ map[string]probed) { c.cf.Config.User = "0" },
		"workdir":   func(c *check, _ map[string]probed) { c.cf.Config.WorkingDir = "/tmp" },
		"file mode": func(c *check, _ map[string]probed) { c.mounts[0].mode = 0o700 },
		"file path": func(c *check, _ map[string]probed) { c.mounts[0].to = "/bin/pilot-agent" },
		"file bytes": func(_ *check, f map[string]probed) {
			f["/usr/local/bin/pilot-agent"] = probed{size: 100, content: "go:action/other"}
		},
		"file size": func(_ *check, f map[string]probed) {
			f["/usr/local/bin/envoy"] = probed{size: 201, content: f["/usr/local/bin/envoy"].content}
		},
	}
	for what, change := range changes {
		c, files := memoCheck()
		change(c, files)
		got := c.memoKey(files)
		if what == "file path" {
			assert.Empty(t, got, "a file not probed: no key")
			continue
		}
		assert.NotEqual(t, key, got, what)
		assert.NotEmpty(t, got, what)
	}
	c, files = memoCheck()
	files["/usr/local/bin/envoy"] = probed{size: 200}
	assert.Empty(t, c.memoKey(files), "a file whose content is not known: no key")
}

// A check whose memo is kept is not run again (nothing is solved: there is
// no BuildKit here), its output is the memo's; only a check that ran and
// passed is remembered.
func TestValidationReusesMemos(t *testing.T) {
	dir := t.TempDir()
	c, files := memoCheck()
	c.key = c.memoKey(files)
	c.binary = &attest.BinaryCheck{Path: "/usr/local/bin/pilot-agent"}
	vr := &validationRun{memos: dir, checks: []*check{c}}
	run := &buildRun{log: logrus.New()}

	// It ran and passed: remembered.
	c.stdout, c.stderr = []byte(`{"clientVersion": {"version": "1.24.2"}}`), []byte("a warning")
	require.NoError(t, vr.remember(c))
	failed := *c
	failed.key, failed.err = strings.Repeat("f", 64), assert.AnError
	require.NoError(t, vr.remember(&failed))
	_, ok := loadMemo(dir, failed.key)
	assert.False(t, ok, "a program that failed is run again next time")

	// The next build's check with the same key.
	next, _ := memoCheck()
	next.key, next.binary = c.key, &attest.BinaryCheck{}
	vr = &validationRun{memos: dir, checks: []*check{next}}
	require.NoError(t, vr.run(context.Background(), run, nil, llb.Scratch()))
	assert.True(t, vr.ran)
	assert.True(t, next.reused)
	assert.Equal(t, c.stdout, next.stdout)
	assert.Equal(t, c.stderr, next.stderr)
	next.record()
	assert.True(t, next.binary.Reused)

	// Without memos (a build asked not to use caches), the memo is not
	// looked at.
	vr = &validationRun{checks: []*check{next}}
	_, ok = vr.memo(next)
	assert.False(t, ok)
}
