package builder

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/recipes"
)

// treeOf reads every file under dir but .git, by slash path.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	}))
	return out
}

// makePatch is the diff that turns files into changed (a missing value
// deletes the file), made with git in a scratch copy.
func makePatch(t *testing.T, files map[string]string, changed map[string]*string) recipes.Patch {
	t.Helper()
	dir := t.TempDir()
	gitIn(t, dir, "init", "-q")
	writeFiles(t, dir, files)
	gitIn(t, dir, "add", "-A")
	gitIn(t, dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
	for p, c := range changed {
		if c == nil {
			require.NoError(t, os.Remove(filepath.Join(dir, p)))
		} else {
			writeFiles(t, dir, map[string]string{p: *c})
		}
	}
	gitIn(t, dir, "add", "-A")
	diff := gitIn(t, dir, "diff", "--cached", "--binary")
	return recipes.Patch{Path: "patches/p.patch", Data: []byte(diff), SHA256: sha256Hex([]byte(diff))}
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	require.NoError(t, err, "git %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// One patched checkout per commit: a new set of patches puts back what
// the last set changed, then applies its own, and the commit's checkout
// is never written through the links the two share.
func TestPatchedCheckoutFollowsThePatches(t *testing.T) {
	files := map[string]string{"a.go": "package a\n", "b.go": "package b\n", "dir/c.go": "package c\n"}
	pristine := t.TempDir()
	gitIn(t, pristine, "init", "-q")
	writeFiles(t, pristine, files)
	gitIn(t, pristine, "add", "-A")
	gitIn(t, pristine, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
	// A folder git ignores, which git status names whole.
	require.NoError(t, os.WriteFile(filepath.Join(pristine, ".git", "info", "exclude"), []byte("/out/\n"), 0o644))
	writeFiles(t, pristine, map[string]string{"out/kept": "ignored\n"})
	files["out/kept"] = "ignored\n"
	dir := filepath.Join(t.TempDir(), "src-patched")
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	o := InputOptions{Log: log}
	ctx := context.Background()
	str := func(s string) *string { return &s }

	// Set one: changes a.go, adds new.go, deletes dir/c.go.
	one := makePatch(t, files, map[string]*string{"a.go": str("package a // one\n"), "new.go": str("package n\n"), "dir/c.go": nil})
	require.NoError(t, patchedCheckout(ctx, o, []recipes.Patch{one}, dir, "one", "upstream", pristine))
	assert.Equal(t, map[string]string{"a.go": "package a // one\n", "b.go": "package b\n", "new.go": "package n\n", "out/kept": "ignored\n"}, treeOf(t, dir))

	// Set two: changes b.go only; what set one did is undone, in place.
	two := makePatch(t, files, map[string]*string{"b.go": str("package b // two\n")})
	require.NoError(t, patchedCheckout(ctx, o, []recipes.Patch{two}, dir, "two", "upstream", pristine))
	assert.NotContains(t, logs.String(), "making it again", "the folder is changed, not made again")
	assert.Equal(t, map[string]string{"a.go": "package a\n", "b.go": "package b // two\n", "dir/c.go": "package c\n", "out/kept": "ignored\n"}, treeOf(t, dir))
	assert.Equal(t, files, treeOf(t, pristine), "the commit's checkout is as it was")
	changed, deleted, err := changedFiles(ctx, dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"b.go", "out/"}, changed)
	assert.Empty(t, deleted)

	// The same set again: nothing to do, even if someone changed a file
	// (the marker is what is trusted; the folder is sailmaker's own).
	b, err := os.ReadFile(dir + ".patches")
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	require.NoError(t, patchedCheckout(ctx, o, []recipes.Patch{two}, dir, "two", "upstream", pristine))

	// A folder left halfway (no marker) is made again from the commit's.
	require.NoError(t, os.Remove(dir+".patches"))
	writeFiles(t, dir, map[string]string{"stray.go": "package stray\n"})
	require.NoError(t, patchedCheckout(ctx, o, []recipes.Patch{one}, dir, "one", "upstream", pristine))
	assert.Equal(t, map[string]string{"a.go": "package a // one\n", "b.go": "package b\n", "new.go": "package n\n", "out/kept": "ignored\n"}, treeOf(t, dir))

	// A patch that does not apply leaves no marker, so the next build
	// starts from the commit again.
	bad := recipes.Patch{Path: "patches/bad.patch", Data: []byte("--- a/zz.go\n+++ b/zz.go\n@@ -1 +1 @@\n-x\n+y\n")}
	require.Error(t, patchedCheckout(ctx, o, []recipes.Patch{bad}, dir, "bad", "upstream", pristine))
	assert.NoFileExists(t, dir+".patches")
	require.NoError(t, patchedCheckout(ctx, o, []recipes.Patch{two}, dir, "two", "upstream", pristine))
	assert.Equal(t, map[string]string{"a.go": "package a\n", "b.go": "package b // two\n", "dir/c.go": "package c\n", "out/kept": "ignored\n"}, treeOf(t, dir))
	assert.Equal(t, files, treeOf(t, pristine), "the commit's checkout is as it was")
}
