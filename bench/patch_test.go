package bench

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/fixture"
)

// gitApply applies diff to a copy of src at file in a new directory and
// returns the result.
func gitApply(t *testing.T, file string, src, diff []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, filepath.FromSlash(file))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, src, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.patch"), diff, 0o644))
	cmd := exec.Command("git", "apply", "x.patch")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git apply:\n%s\n%s", out, diff)
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	return got
}

func TestMakePatchOnTheFixture(t *testing.T) {
	src, err := os.ReadFile(fixture.Testdata(t, "upstream/"+DefaultPatchFile))
	require.NoError(t, err)
	lines := map[int]bool{}
	for n := 1; n <= 3; n++ {
		p, err := MakePatch(DefaultPatchFile, src, n, Marker("run1", n))
		require.NoError(t, err)
		assert.True(t, p.ChangesBinary)
		assert.Equal(t, DefaultPatchFile, p.File)
		// git apply gives exactly the content the patch says.
		got := gitApply(t, DefaultPatchFile, src, p.Diff)
		assert.Equal(t, string(p.Content), string(got))
		// One line differs, and it holds the run's marker inside a string.
		a, b := splitLines(src), splitLines(got)
		require.Len(t, b, len(a))
		var changed []int
		for i := range a {
			if a[i] != b[i] {
				changed = append(changed, i+1)
			}
		}
		assert.Equal(t, []int{p.Line}, changed)
		assert.Contains(t, p.New, "sailmaker-bench-run1-"+fmt.Sprint(n)+" ")
		assert.NotContains(t, p.Old, "sailmaker-bench")
		assert.Equal(t, strings.TrimSuffix(a[p.Line-1], "\n"), p.Old)
		_, err = parser.ParseFile(token.NewFileSet(), "main.go", got, 0)
		assert.NoError(t, err, "the patched file is still Go")
		// Imports and case labels stay as they were: the program still
		// has its commands.
		assert.NotContains(t, p.New, "import")
		assert.NotContains(t, p.New, "case ")
		lines[p.Line] = true
	}
	assert.Len(t, lines, 3, "each run changes another line")
}

func TestMakePatchEdges(t *testing.T) {
	// No string to change: a comment on the package clause.
	src := []byte("package main\n\nimport \"os\"\n\nfunc main() {\n\tos.Exit(0)\n}\n")
	p, err := MakePatch("cmd/x/main.go", src, 2, "m2")
	require.NoError(t, err)
	assert.False(t, p.ChangesBinary)
	assert.Equal(t, 1, p.Line)
	assert.Equal(t, "package main // m2", p.New)
	assert.Equal(t, string(p.Content), string(gitApply(t, "cmd/x/main.go", src, p.Diff)))

	// A struct tag and a case label are never changed; the last line of a
	// file without a final newline is.
	src = []byte("package main\n\nimport \"fmt\"\n\ntype T struct {\n\tA int `json:\"a\"`\n}\n\nfunc main() {\n\tswitch 1 {\n\tcase 2:\n\t}\n\tswitch \"k\" {\n\tcase \"v\":\n\t}\n\tfmt.Println(\"hello\")}")
	for n := 1; n <= 4; n++ {
		p, err = MakePatch("main.go", src, n, Marker("x", n))
		require.NoError(t, err)
		assert.NotContains(t, p.New, "json")
		assert.NotContains(t, p.New, "case")
		assert.Equal(t, string(p.Content), string(gitApply(t, "main.go", src, p.Diff)), "run %d", n)
	}
	assert.Contains(t, string(p.Diff), "\\ No newline at end of file")

	_, err = MakePatch("main.go", src, 0, "m")
	assert.ErrorContains(t, err, "runs count from 1")
	_, err = MakePatch("main.go", src, 1, `a"b`)
	assert.ErrorContains(t, err, "must be plain text")
	_, err = MakePatch("main.go", []byte("not go"), 1, "m")
	assert.ErrorContains(t, err, "reading main.go")
}
