package attest_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/internal/testenv"
)

// buildTinyProgram builds a Go program that links github.com/google/uuid
// (from the local module cache, no network) and returns its path.
func buildTinyProgram(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var sums []string
	f, err := os.Open(filepath.Join(testenv.ModuleRoot(t), "go.sum"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "github.com/google/uuid v1.6.0") {
			sums = append(sums, sc.Text())
		}
	}
	require.Len(t, sums, 2, "go.sum names github.com/google/uuid v1.6.0")
	files := map[string]string{
		"go.mod":  "module example.com/tiny\n\ngo 1.23\n\nrequire github.com/google/uuid v1.6.0\n",
		"go.sum":  strings.Join(sums, "\n") + "\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/google/uuid\"\n)\n\nfunc main() { fmt.Println(uuid.NewString()) }\n",
	}
	for n, c := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644))
	}
	out := filepath.Join(dir, "tiny")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	return out
}

func packagesByName(doc *attest.SPDXDocument) map[string]attest.SPDXPackage {
	out := map[string]attest.SPDXPackage{}
	for _, p := range doc.Packages {
		out[p.Name] = p
	}
	return out
}

// The SBOM of a real Go binary lists its third-party module, its main
// module (with the version we give it) and the standard library, plus the
// base's Debian packages.
func TestSBOMFromGoBinary(t *testing.T) {
	bin := buildTinyProgram(t)
	b, ok, err := attest.ReadGoBinary(bin, "/usr/local/bin/tiny")
	require.NoError(t, err)
	require.True(t, ok)
	b.MainVersion = "1.0.0"

	// A file that is not a Go binary is skipped, a missing one is an error.
	notGo := filepath.Join(t.TempDir(), "bootstrap.json")
	require.NoError(t, os.WriteFile(notGo, []byte(`{}`), 0o644))
	_, ok, err = attest.ReadGoBinary(notGo, "/etc/bootstrap.json")
	require.NoError(t, err)
	assert.False(t, ok)
	_, _, err = attest.ReadGoBinary(filepath.Join(t.TempDir(), "missing"), "/missing")
	require.Error(t, err)

	debs, err := attest.ParseDebianPackages("libc6=2.36-9+deb12u9,tzdata=2024b-0+deb12u1,zlib1g=1:1.2.13.dfsg-1")
	require.NoError(t, err)
	ref, err := name.NewDigest("registry.internal:5000/fixture/pilot@sha256:" + imageHex)
	require.NoError(t, err)
	created := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	doc, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: created, Binaries: []attest.GoBinary{b}, Debian: debs})
	require.NoError(t, err)

	raw, err := json.Marshal(doc)
	require.NoError(t, err)
	doc, err = attest.ParseSBOM(raw)
	require.NoError(t, err)
	assert.Equal(t, "SPDX-2.3", doc.SPDXVersion)
	assert.Equal(t, "CC0-1.0", doc.DataLicense)
	assert.Equal(t, "SPDXRef-DOCUMENT", doc.SPDXID)
	assert.Equal(t, "2025-03-01T10:00:00Z", doc.CreationInfo.Created)
	assert.Equal(t, []string{"Tool: sailmaker"}, doc.CreationInfo.Creators)
	assert.Contains(t, doc.DocumentNamespace, "sha256:"+imageHex)

	pkgs := packagesByName(doc)
	uuid := pkgs["github.com/google/uuid"]
	assert.Equal(t, "v1.6.0", uuid.VersionInfo)
	assert.Equal(t, "pkg:golang/github.com/google/uuid@v1.6.0", uuid.Purl())
	assert.Equal(t, "go module; in: /usr/local/bin/tiny", uuid.Comment)
	main := pkgs["example.com/tiny"]
	assert.Equal(t, "1.0.0", main.VersionInfo)
	assert.Equal(t, "pkg:golang/example.com/tiny@1.0.0", main.Purl())
	std := pkgs["stdlib"]
	assert.Equal(t, runtime.Version(), std.VersionInfo, "the toolchain that built the test binary")
	assert.Equal(t, "pkg:golang/stdlib@"+runtime.Version(), std.Purl())

	libc := pkgs["libc6"]
	assert.Equal(t, "2.36-9+deb12u9", libc.VersionInfo)
	assert.Equal(t, "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64", libc.Purl())
	assert.Equal(t, "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64", pkgs["zlib1g"].Purl())
	assert.Len(t, doc.Packages, 6)

	ids := map[string]bool{}
	for _, p := range doc.Packages {
		assert.Regexp(t, `^SPDXRef-Package-[A-Za-z0-9.-]+$`, p.SPDXID)
		assert.False(t, ids[p.SPDXID], "duplicate SPDXID %s", p.SPDXID)
		ids[p.SPDXID] = true
		assert.Equal(t, "NOASSERTION", p.DownloadLocation)
	}
	assert.Len(t, doc.Relationships, len(doc.Packages))
}

// A binary's main module built from a checkout says "(devel)": recorded
// as such, with no version in its purl.
func TestSBOMDevelMainModule(t *testing.T) {
	b, ok, err := attest.ReadGoBinary(buildTinyProgram(t), "/usr/local/bin/envoy")
	require.NoError(t, err)
	require.True(t, ok)
	ref, err := name.NewDigest("registry.internal:5000/fixture/proxyv2@sha256:" + imageHex)
	require.NoError(t, err)
	doc, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: time.Now(), Binaries: []attest.GoBinary{b}})
	require.NoError(t, err)
	main := packagesByName(doc)["example.com/tiny"]
	assert.Equal(t, "(devel)", main.VersionInfo)
	assert.Equal(t, "pkg:golang/example.com/tiny", main.Purl())
}

// Two binaries linking the same module give one package naming both.
func TestSBOMMergesModulesAcrossBinaries(t *testing.T) {
	bin := buildTinyProgram(t)
	a, _, err := attest.ReadGoBinary(bin, "/usr/local/bin/a")
	require.NoError(t, err)
	b, _, err := attest.ReadGoBinary(bin, "/usr/local/bin/b")
	require.NoError(t, err)
	ref, err := name.NewDigest("registry.internal:5000/fixture/pilot@sha256:" + imageHex)
	require.NoError(t, err)
	doc, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: time.Now(), Binaries: []attest.GoBinary{b, a}})
	require.NoError(t, err)
	n := 0
	for _, p := range doc.Packages {
		if p.Name == "github.com/google/uuid" {
			n++
			assert.Equal(t, "go module; in: /usr/local/bin/a /usr/local/bin/b", p.Comment)
		}
	}
	assert.Equal(t, 1, n)
}

func TestParseDebianPackages(t *testing.T) {
	got, err := attest.ParseDebianPackages("a=1, b=2:3~x ,")
	require.NoError(t, err)
	assert.Equal(t, []attest.DebianPackage{{Name: "a", Version: "1"}, {Name: "b", Version: "2:3~x"}}, got)
	_, err = attest.ParseDebianPackages("a=1,broken")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broken")
	got, err = attest.ParseDebianPackages("")
	require.NoError(t, err)
	assert.Empty(t, got)
}
