package aptrepo

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/aptrepo/apttest"
	"github.com/sailmaker/sailmaker/packaging/deb"
)

var (
	baseTime = time.Unix(1734146883, 0).UTC()
	keyTime  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// testKey is one key for the whole test binary (keys are cheap, but the
// same key is what makes two builds comparable byte for byte).
var testKey = func() *Key {
	k, err := GenerateKey("sailmaker test repository", "apt@example.org", keyTime)
	if err != nil {
		panic(err)
	}
	return k
}()

func signer(t *testing.T) *Signer {
	t.Helper()
	s, err := ParseSigner(testKey.Private)
	require.NoError(t, err)
	return s
}

// debFile builds a small package into dir and returns its path.
func debFile(t *testing.T, dir, name, version, arch string, day int, content string) string {
	t.Helper()
	p := deb.Package{
		Name: name, Version: version, Architecture: arch,
		Maintainer: "Sail Maker <sailmaker@example.org>",
		Synopsis:   "test package " + name, Description: "A package for the tests of aptrepo.", Section: "utils",
		Files: []deb.File{
			{Dest: "/usr/bin/" + name, Data: []byte("#!/bin/sh\necho " + content + "\n"), Mode: 0o755},
		},
		Copyright: []byte("Copyright 2024 Sail Maker\n"),
		MTime:     baseTime.AddDate(0, 0, day),
	}
	path := filepath.Join(dir, p.FileName())
	require.NoError(t, deb.WriteFile(context.Background(), path, p))
	return path
}

func readAll(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = data
		return nil
	}))
	return files
}

func TestBuild(t *testing.T) {
	ctx := context.Background()
	in := t.TempDir()
	a := debFile(t, in, "alpha-tool", "1.0-1", "amd64", 0, "alpha")
	b := debFile(t, in, "beta-doc", "2:0.5", "all", 3, "beta")
	libc := debFile(t, in, "libcsail", "1.0", "amd64", 1, "lib")
	dir := t.TempDir()
	res, err := Build(ctx, dir, []string{b, a, libc}, Options{Signer: signer(t)})
	require.NoError(t, err)

	assert.Equal(t, baseTime.AddDate(0, 0, 3), res.Date, "Date is the newest package's time")
	assert.Equal(t, []string{"amd64"}, res.Architectures)
	var names []string
	for _, p := range res.Packages {
		names = append(names, p.Filename+" "+p.Status)
	}
	assert.Equal(t, []string{
		"pool/main/a/alpha-tool/alpha-tool_1.0-1_amd64.deb added",
		"pool/main/b/beta-doc/beta-doc_0.5_all.deb added",
		"pool/main/libc/libcsail/libcsail_1.0_amd64.deb added",
	}, names)

	files := readAll(t, dir)
	for _, p := range res.Packages {
		sum := sha256.Sum256(files[p.Filename])
		assert.Equal(t, p.SHA256, hex.EncodeToString(sum[:]), p.Filename)
	}
	packages := string(files["dists/stable/main/binary-amd64/Packages"])
	stanzas := strings.Split(strings.TrimSpace(packages), "\n\n")
	require.Len(t, stanzas, 3, packages)
	assert.True(t, strings.HasPrefix(stanzas[0], "Package: alpha-tool\nVersion: 1.0-1\n"), stanzas[0])
	assert.Contains(t, stanzas[1], "Package: beta-doc\nVersion: 2:0.5\n", "arch-independent packages are in every binary-<arch> index")
	assert.Contains(t, stanzas[0], "\nFilename: pool/main/a/alpha-tool/alpha-tool_1.0-1_amd64.deb\n")
	assert.Contains(t, stanzas[0], fmt.Sprintf("\nSize: %d\n", res.Packages[0].Size))
	assert.True(t, strings.HasSuffix(stanzas[0], "\nSHA256: "+res.Packages[0].SHA256), stanzas[0])
	assert.Contains(t, stanzas[0], "\nDescription: test package alpha-tool\n A package for the tests of aptrepo.\n")
	zr, err := gzip.NewReader(bytes.NewReader(files["dists/stable/main/binary-amd64/Packages.gz"]))
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, packages, string(unzipped))

	// Release names every index with its size and sha256.
	release := string(files["dists/stable/Release"])
	assert.Contains(t, release, "Suite: stable\nCodename: stable\nDate: Tue, 17 Dec 2024 03:28:03 UTC\nArchitectures: amd64\nComponents: main\n")
	for _, f := range []string{"main/binary-amd64/Packages", "main/binary-amd64/Packages.gz"} {
		data := files["dists/stable/"+f]
		sum := sha256.Sum256(data)
		assert.Contains(t, release, fmt.Sprintf(" %s %d %s\n", hex.EncodeToString(sum[:]), len(data), f))
	}
	assert.True(t, bytes.Contains(files["dists/stable/InRelease"], files["dists/stable/Release"]), "InRelease holds Release")

	// gpgv, as apt uses it, accepts both signatures with the public key, and
	// refuses a changed Release.
	keyring := filepath.Join(t.TempDir(), "key.gpg")
	require.NoError(t, os.WriteFile(keyring, testKey.PublicKeyring, 0o644))
	gpgv := func(args ...string) error {
		out, err := exec.Command("gpgv", append([]string{"--keyring", keyring}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), `Good signature from "sailmaker test repository <apt@example.org>"`) {
			return fmt.Errorf("no good signature: %s", out)
		}
		return nil
	}
	assert.NoError(t, gpgv(filepath.Join(dir, "dists/stable/InRelease")))
	assert.NoError(t, gpgv(filepath.Join(dir, "dists/stable/Release.gpg"), filepath.Join(dir, "dists/stable/Release")))
	changed := filepath.Join(t.TempDir(), "Release")
	require.NoError(t, os.WriteFile(changed, bytes.Replace(files["dists/stable/Release"], []byte("Suite: stable"), []byte("Suite: stablE"), 1), 0o644))
	assert.Error(t, gpgv(filepath.Join(dir, "dists/stable/Release.gpg"), changed))

	// The same packages give the same repository, byte for byte, whatever
	// the order they are given in.
	dir2 := t.TempDir()
	_, err = Build(ctx, dir2, []string{libc, a, b}, Options{Signer: signer(t)})
	require.NoError(t, err)
	assert.Equal(t, files, readAll(t, dir2))
}

func TestBuildUpdates(t *testing.T) {
	ctx := context.Background()
	in := t.TempDir()
	dir := t.TempDir()
	a1 := debFile(t, in, "alpha-tool", "1.0-1", "amd64", 0, "one")
	res, err := Build(ctx, dir, []string{a1}, Options{Signer: signer(t)})
	require.NoError(t, err)
	assert.Equal(t, "added", res.Packages[0].Status)

	a2 := debFile(t, in, "alpha-tool", "1.1-1", "amd64", 5, "two")
	arm := debFile(t, in, "alpha-tool", "1.1-1", "arm64", 5, "two")
	res, err = Build(ctx, dir, []string{a2, a1, arm}, Options{Signer: signer(t)})
	require.NoError(t, err)
	var got []string
	for _, p := range res.Packages {
		got = append(got, p.Version+" "+p.Architecture+" "+p.Status)
	}
	assert.Equal(t, []string{"1.0-1 amd64 unchanged", "1.1-1 amd64 added", "1.1-1 arm64 added"}, got)
	assert.Equal(t, []string{"amd64", "arm64"}, res.Architectures)
	arm64Index, err := os.ReadFile(filepath.Join(dir, "dists/stable/main/binary-arm64/Packages"))
	require.NoError(t, err)
	assert.Contains(t, string(arm64Index), "Architecture: arm64")
	assert.NotContains(t, string(arm64Index), "Architecture: amd64")

	// Nothing given: the pool is re-indexed as it is.
	before := readAll(t, dir)
	res, err = Build(ctx, dir, nil, Options{Signer: signer(t)})
	require.NoError(t, err)
	assert.Equal(t, "kept", res.Packages[0].Status)
	assert.Equal(t, before, readAll(t, dir))

	// A published version with other bytes is refused, and nothing changes.
	other := debFile(t, t.TempDir(), "alpha-tool", "1.0-1", "amd64", 9, "changed")
	_, err = Build(ctx, dir, []string{other}, Options{Signer: signer(t)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "alpha-tool_1.0-1_amd64 is already in the repository (pool/main/a/alpha-tool/alpha-tool_1.0-1_amd64.deb) with other content")
	assert.Contains(t, err.Error(), "raise the version")
	assert.Equal(t, before, readAll(t, dir))
}

func TestBuildRefuses(t *testing.T) {
	ctx := context.Background()
	in := t.TempDir()
	a := debFile(t, in, "alpha-tool", "1.0-1", "amd64", 0, "one")
	notDeb := filepath.Join(in, "notes.deb")
	require.NoError(t, os.WriteFile(notDeb, []byte("hello"), 0o644))
	for name, c := range map[string]struct {
		debs []string
		opts Options
		msg  string
	}{
		"no key":       {[]string{a}, Options{}, "no signing key"},
		"bad suite":    {[]string{a}, Options{Suite: "Stable Release", Signer: signer(t)}, `suite "Stable Release"`},
		"bad arch":     {[]string{a}, Options{Architectures: []string{"all"}, Signer: signer(t)}, `architecture "all"`},
		"not a deb":    {[]string{notDeb}, Options{Signer: signer(t)}, "notes.deb: not a Debian package"},
		"missing file": {[]string{filepath.Join(in, "gone.deb")}, Options{Signer: signer(t)}, "gone.deb"},
		"nothing":      {nil, Options{Signer: signer(t)}, "no packages"},
	} {
		dir := t.TempDir()
		_, err := Build(ctx, dir, c.debs, c.opts)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), c.msg, name)
		}
		entries, _ := os.ReadDir(dir)
		assert.Empty(t, entries, "%s: nothing written", name)
	}
}

func TestSigner(t *testing.T) {
	s := signer(t)
	assert.Equal(t, testKey.Fingerprint, s.Fingerprint())
	assert.Equal(t, keyTime, s.Created().UTC())
	_, err := ParseSigner(testKey.Public)
	assert.ErrorContains(t, err, "is a public key")
	_, err = ParseSigner([]byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n"))
	assert.ErrorContains(t, err, "not an OpenPGP key")
	_, err = GenerateKey("", "", keyTime)
	assert.Error(t, err)

	// Signatures are made no earlier than the key, and are deterministic.
	msg := []byte("Origin: x\n")
	one, err := s.DetachSign(msg, baseTime)
	require.NoError(t, err)
	two, err := s.DetachSign(msg, baseTime.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, one, two, "both before the key's creation: signed at its creation time")
	three, err := s.DetachSign(msg, keyTime.Add(time.Hour))
	require.NoError(t, err)
	assert.NotEqual(t, one, three)
	pub, ring, err := s.PublicKey()
	require.NoError(t, err)
	assert.Equal(t, testKey.Public, pub)
	assert.Equal(t, testKey.PublicKeyring, ring)
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := debFile(t, t.TempDir(), "alpha-tool", "1.0-1", "amd64", 0, "one")
	_, err := Build(ctx, dir, []string{a}, Options{Signer: signer(t)})
	require.NoError(t, err)
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "dists", "leak")))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "pool", "out")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dists", ".Release.tmp"), []byte("partial"), 0o644))

	h, err := Handler(dir)
	require.NoError(t, err)
	srv := httptest.NewServer(http.StripPrefix("/apt", h))
	defer srv.Close()

	get := func(method, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		// Send the path as written, unescaped and uncleaned.
		req.URL.Opaque = path
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	release, err := os.ReadFile(filepath.Join(dir, "dists/stable/Release"))
	require.NoError(t, err)
	resp, body := get("GET", "/apt/dists/stable/Release")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, string(release), body)
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))

	resp, body = get("GET", "/apt/pool/main/a/alpha-tool/alpha-tool_1.0-1_amd64.deb", "Range", "bytes=0-7")
	assert.Equal(t, 206, resp.StatusCode)
	assert.Equal(t, "!<arch>\n", body)
	assert.Equal(t, "application/vnd.debian.binary-package", resp.Header.Get("Content-Type"))

	resp, body = get("HEAD", "/apt/dists/stable/InRelease")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, body)

	for _, path := range []string{
		"/apt/", "/apt/dists/", "/apt/dists", "/apt/pool/main/a/",
		"/apt/../../etc/passwd", "/apt/dists/../../../etc/passwd", "/apt/%2e%2e/%2e%2e/etc/passwd",
		"/apt/dists/stable/..%2f..%2f..%2fetc/passwd", "/apt/dists/leak", "/apt/pool/out/secret",
		"/apt/dists/.Release.tmp", "/apt/dists//stable/Release", "/apt/dists/stable/./Release",
		"/apt/dists\\stable\\Release", "/apt/nothing",
	} {
		resp, body := get("GET", path)
		assert.Equal(t, 404, resp.StatusCode, path)
		assert.NotContains(t, body, "secret", path)
		assert.NotContains(t, body, "Release", path)
	}
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		resp, _ := get(method, "/apt/dists/stable/Release")
		assert.Equal(t, 405, resp.StatusCode, method)
		assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	}
	_, err = Handler(filepath.Join(dir, "missing"))
	assert.Error(t, err)
}

// TestAptGet: the real apt-get reads a repository Build made, served by
// Handler, verifying its signature, installs from it, and refuses it when
// an index was changed after signing or the key is another.
func TestAptGet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs apt-get (make test)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	a := debFile(t, t.TempDir(), "alpha-tool", "1.0-1", "amd64", 0, "hello from alpha-tool")
	_, err := Build(ctx, dir, []string{a}, Options{Signer: signer(t)})
	require.NoError(t, err)
	h, err := Handler(dir)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()

	root := apttest.NewRoot(t)
	key := root.Path("/etc/apt/keyrings/sailmaker-apt.asc")
	require.NoError(t, os.WriteFile(key, testKey.Public, 0o644))
	root.SetSources(t, fmt.Sprintf("[signed-by=%s] %s/ stable main", key, srv.URL))
	out, err := root.AptGet("update")
	require.NoError(t, err, out)
	assert.NotContains(t, out, "W:", "apt-get update warns:\n%s", out)
	out, err = root.AptGet("install", "-y", "alpha-tool")
	require.NoError(t, err, out)
	script, err := os.ReadFile(root.Path("/usr/bin/alpha-tool"))
	require.NoError(t, err)
	assert.Equal(t, "#!/bin/sh\necho hello from alpha-tool\n", string(script))

	// Another key: apt-get update fails.
	other, err := GenerateKey("someone else", "", keyTime)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(key, other.Public, 0o644))
	root.ForgetLists(t)
	out, err = root.AptGet("update")
	assert.Error(t, err, out)
	assert.Contains(t, out, "NO_PUBKEY")
	require.NoError(t, os.WriteFile(key, testKey.Public, 0o644))

	// An index changed after signing: apt-get update fails.
	for _, f := range []string{"Packages", "Packages.gz"} {
		p := filepath.Join(dir, "dists/stable/main/binary-amd64", f)
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		if f == "Packages.gz" {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(bytes.Replace(mustGunzip(t, data), []byte("Version: 1.0-1"), []byte("Version: 1.0-9"), 1))
			require.NoError(t, zw.Close())
			data = buf.Bytes()
		} else {
			data = bytes.Replace(data, []byte("Version: 1.0-1"), []byte("Version: 1.0-9"), 1)
		}
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	root.ForgetLists(t)
	out, err = root.AptGet("update")
	assert.Error(t, err, out)
	assert.Contains(t, out, "Failed to fetch")
	assert.Contains(t, out, "binary-amd64/Packages")
}

func mustGunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}
