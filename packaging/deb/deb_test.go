package deb

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/packaging/deb/debtest"
)

var testTime = time.Unix(1734146883, 0).UTC()

const testCopyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hello

Files: *
Copyright: 2024 Sail Maker
License: Apache-2.0
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
`

// testPackage is a small valid package: a shell script and a data file.
func testPackage(t *testing.T) Package {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "hello")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho hello from the package\n"), 0o700))
	man, err := gzipNoHeader([]byte(".TH HELLO-SAILMAKER 1 2024-12-14 sailmaker\n.SH NAME\nhello-sailmaker \\- print a greeting\n.SH SYNOPSIS\n.B hello-sailmaker\n.SH DESCRIPTION\nPrints a greeting.\n"))
	require.NoError(t, err)
	return Package{
		Name:         "hello-sailmaker",
		Version:      "1.2.3-1",
		Architecture: "all",
		Maintainer:   "Sail Maker <sailmaker@example.org>",
		Synopsis:     "greeting for tests of sailmaker's package builder",
		Description:  "Prints a greeting.\n\nA package made by the tests of packaging/deb.",
		Section:      "utils",
		Homepage:     "https://example.org/hello",
		Depends:      []string{"dash (>= 0.5)"},
		Files: []File{
			{Dest: "/usr/bin/hello-sailmaker", Source: script, Mode: 0o755},
			{Dest: "/usr/share/hello-sailmaker/greeting.txt", Data: []byte("hello\n"), Mode: 0o644},
			{Dest: "/usr/share/man/man1/hello-sailmaker.1.gz", Data: man, Mode: 0o644},
		},
		Copyright: []byte(testCopyright),
		Changes:   []string{"First package."},
		MTime:     testTime,
	}
}

func buildFile(t *testing.T, p Package) (string, []byte) {
	t.Helper()
	data, err := Build(context.Background(), p)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), p.FileName())
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path, data
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

func TestBuildIsReproducible(t *testing.T) {
	p := testPackage(t)
	_, first := buildFile(t, p)
	_, second := buildFile(t, p)
	assert.Equal(t, first, second, "the same package built twice must give the same bytes")

	// The order files are given in does not matter: members are sorted.
	reversed := p
	reversed.Files = []File{p.Files[2], p.Files[1], p.Files[0]}
	_, third := buildFile(t, reversed)
	assert.Equal(t, first, third, "files given in another order must give the same bytes")

	// The source file's own time and mode on disk do not reach the package.
	require.NoError(t, os.Chtimes(p.Files[0].Source, time.Now(), time.Now()))
	require.NoError(t, os.Chmod(p.Files[0].Source, 0o777))
	_, fourth := buildFile(t, p)
	assert.Equal(t, first, fourth, "the host file's mtime and mode must not change the package")

	// Another MTime gives other bytes (the time is really in there).
	later := p
	later.MTime = testTime.Add(time.Hour)
	_, fifth := buildFile(t, later)
	assert.NotEqual(t, first, fifth)
}

func TestBuildDpkgDeb(t *testing.T) {
	p := testPackage(t)
	path, _ := buildFile(t, p)
	assert.Equal(t, "hello-sailmaker_1.2.3-1_all.deb", filepath.Base(path))

	info := run(t, "dpkg-deb", "--info", path)
	for _, want := range []string{
		"Package: hello-sailmaker", "Version: 1.2.3-1", "Architecture: all",
		"Maintainer: Sail Maker <sailmaker@example.org>", "Section: utils", "Priority: optional",
		"Depends: dash (>= 0.5)", "Homepage: https://example.org/hello",
		"Description: greeting for tests of sailmaker's package builder",
		" Prints a greeting.\n  .\n  A package made by the tests of packaging/deb.",
		"md5sums",
	} {
		assert.Contains(t, info, want)
	}
	for _, field := range []string{"Package", "Version", "Architecture", "Maintainer", "Description", "Section", "Priority"} {
		got := strings.TrimSpace(run(t, "dpkg-deb", "--field", path, field))
		assert.NotEmpty(t, got, "dpkg-deb --field %s", field)
	}

	contents := run(t, "dpkg-deb", "--contents", path)
	for _, line := range []string{
		"-rwxr-xr-x root/root", "./usr/bin/hello-sailmaker",
		"./usr/share/hello-sailmaker/greeting.txt",
		"./usr/share/doc/hello-sailmaker/copyright",
		"./usr/share/doc/hello-sailmaker/changelog.Debian.gz",
		"2024-12-14 03:28",
	} {
		assert.Contains(t, contents, line)
	}
	assert.NotContains(t, contents, "2025", "no member may carry another time than MTime")

	// md5sums lists every file with its real sum.
	dir := t.TempDir()
	run(t, "dpkg-deb", "--raw-extract", path, dir)
	md5sums, err := os.ReadFile(filepath.Join(dir, "DEBIAN", "md5sums"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(md5sums)), "\n")
	assert.Len(t, lines, 5)
	for _, l := range lines {
		sum, rel, ok := strings.Cut(l, "  ")
		require.True(t, ok, l)
		data, err := os.ReadFile(filepath.Join(dir, rel))
		require.NoError(t, err)
		got := md5.Sum(data)
		assert.Equal(t, hex.EncodeToString(got[:]), sum, rel)
	}
	cl := run(t, "sh", "-c", "zcat "+filepath.Join(dir, "usr/share/doc/hello-sailmaker/changelog.Debian.gz"))
	assert.Equal(t, "hello-sailmaker (1.2.3-1) unstable; urgency=medium\n\n  * First package.\n\n -- Sail Maker <sailmaker@example.org>  Sat, 14 Dec 2024 03:28:03 +0000\n", cl)
	// gzip -n: no name, no time in the header (lintian checks it too).
	gz, err := os.ReadFile(filepath.Join(dir, "usr/share/doc/hello-sailmaker/changelog.Debian.gz"))
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 0, 0, 0}, gz[4:8], "gzip header mtime")
	assert.Zero(t, gz[3]&0x08, "gzip header must not carry a file name")

	out := run(t, filepath.Join(dir, "usr/bin/hello-sailmaker"))
	assert.Equal(t, "hello from the package\n", out)
}

func TestBuildNativeVersionChangelog(t *testing.T) {
	p := testPackage(t)
	p.Version = "2:1.0+git1"
	path, _ := buildFile(t, p)
	assert.Equal(t, "hello-sailmaker_1.0+git1_all.deb", filepath.Base(path), "the file name drops the epoch")
	assert.Equal(t, "2:1.0+git1\n", run(t, "dpkg-deb", "--field", path, "Version"))
	contents := run(t, "dpkg-deb", "--contents", path)
	assert.Contains(t, contents, "./usr/share/doc/hello-sailmaker/changelog.gz")
	assert.NotContains(t, contents, "changelog.Debian.gz")
}

func TestLintian(t *testing.T) {
	if testing.Short() {
		t.Skip("runs lintian (make test)")
	}
	p := testPackage(t)
	p.LintianOverrides = []LintianOverride{{Tag: "initial-upload-closes-no-bugs", Reason: "not uploaded to Debian: there is no ITP bug to close"}}
	path, _ := buildFile(t, p)
	tags := debtest.Lintian(t, path)
	assert.Empty(t, tags.Errors, "lintian errors")
	assert.Empty(t, tags.Warnings, "lintian warnings")
	assert.Equal(t, []string{"initial-upload-closes-no-bugs"}, tags.Overridden)

	// Without the override the warning shows: the override file is read.
	p.LintianOverrides = nil
	path, _ = buildFile(t, p)
	tags = debtest.Lintian(t, path)
	assert.Equal(t, []string{"initial-upload-closes-no-bugs"}, tags.Warnings)
}

func TestReadInfoAndDataFile(t *testing.T) {
	p := testPackage(t)
	_, data := buildFile(t, p)
	info, err := ReadInfo(bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, "hello-sailmaker", info.Control.Get("package"))
	assert.Equal(t, "1.2.3-1", info.Control.Get("Version"))
	assert.Equal(t, "greeting for tests of sailmaker's package builder\nPrints a greeting.\n.\nA package made by the tests of packaging/deb.", info.Control.Get("Description"))
	assert.True(t, testTime.Equal(info.MTime), "mtime %s", info.MTime)
	assert.True(t, strings.HasPrefix(info.Control.Raw, "Package: hello-sailmaker\n"))

	got, err := ReadDataFile(bytes.NewReader(data), "/usr/share/hello-sailmaker/greeting.txt")
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(got))
	_, err = ReadDataFile(bytes.NewReader(data), "/etc/nothing")
	assert.ErrorContains(t, err, "/etc/nothing is not in the package")

	_, err = ReadInfo(strings.NewReader("not an ar archive at all"))
	assert.ErrorContains(t, err, "not a Debian package")
}

// TestReadInfoDpkgDeb reads a package dpkg-deb made (xz-compressed members),
// not one of ours.
func TestReadInfoDpkgDeb(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "usr/share/foo"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "usr/share/foo/bar"), []byte("bar\n"), 0o644))
	control := "Package: foo\nVersion: 0.1-2\nArchitecture: all\nMaintainer: A B <a@example.org>\nDescription: foo\n a test\n"
	require.NoError(t, os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644))
	out := filepath.Join(t.TempDir(), "foo.deb")
	run(t, "dpkg-deb", "-Zxz", "--root-owner-group", "--build", root, out)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	info, err := ReadInfo(bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, control, info.Control.Raw)
	assert.Equal(t, "a test", strings.Split(info.Control.Get("description"), "\n")[1])
	bar, err := ReadDataFile(bytes.NewReader(data), "/usr/share/foo/bar")
	require.NoError(t, err)
	assert.Equal(t, "bar\n", string(bar))
}
