package deb

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var versionCases = []struct {
	v      string
	ok     bool
	reason string // part of the error message when !ok
}{
	{"1.24.2", true, ""},
	{"1.24.2-1", true, ""},
	{"0", true, ""},
	{"1:1.0~rc1+dfsg-0ubuntu1", true, ""},
	{"1.25.0~beta.1-1", true, ""},
	{"1.24.2+2.2047006", true, ""},
	{"1.24.2+2.2047006+r1", true, ""},
	{"1.0-1-2", true, ""}, // upstream 1.0-1, revision 2
	{"0:1.0", true, ""},
	{"", false, "empty"},
	{"1 0", false, "space"},
	{"a1.0", false, "must start with a digit"},
	{"1.0_1", false, `'_' is not allowed in the upstream version`},
	{"1:2:3", false, "more than one ':'"},
	{"1.0-", false, "revision after the last '-' is empty"},
	{":1.0", false, "epoch"},
	{"x:1.0", false, "epoch"},
	{"-1:1.0", false, "epoch"},
	{"1:", false, "upstream version is empty"},
	{"1.0-a_b", false, `'_' is not allowed in the Debian revision`},
	{"1.0-1:2", false, "epoch"},
	{"1.0é", false, "non-ASCII"},
	{"99999999999:1", false, "too large"},
}

func TestCheckVersion(t *testing.T) {
	for _, c := range versionCases {
		err := CheckVersion(c.v)
		if c.ok {
			assert.NoError(t, err, "%q", c.v)
		} else if assert.Error(t, err, "%q", c.v) {
			assert.Contains(t, err.Error(), c.reason, "%q", c.v)
		}
	}
}

// TestCheckVersionAgreesWithDpkg: every version CheckVersion accepts, dpkg
// accepts; every version dpkg refuses, CheckVersion refuses. (CheckVersion
// is stricter where policy is: a colon in the upstream version.)
func TestCheckVersionAgreesWithDpkg(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatalf("dpkg is needed: %v", err)
	}
	for _, c := range versionCases {
		if c.v == "" {
			continue
		}
		dpkgOK := exec.Command("dpkg", "--validate-version", c.v).Run() == nil
		oursOK := CheckVersion(c.v) == nil
		if oursOK {
			assert.True(t, dpkgOK, "CheckVersion accepts %q but dpkg refuses it", c.v)
		}
		if !dpkgOK {
			assert.False(t, oursOK, "dpkg refuses %q but CheckVersion accepts it", c.v)
		}
	}
}

func TestCompareVersionsAgreesWithDpkg(t *testing.T) {
	pairs := [][2]string{
		{"1.24.2+2.2047006", "1.24.2+2.2047007"},
		{"1.24.2+2.2047006", "1.24.2+2.2047006+r1"},
		{"1.24.2+2.2047006+r1", "1.24.2+2.2047006+r2"},
		{"1.24.2+2.2047006+r9", "1.24.2+2.2047006+r10"},
		{"1.25.0~beta.1+1.1025000", "1.25.0+1.1025000"},
		{"1.9.5", "1.10.0"},
		{"2.0", "1:0.1"},
	}
	for _, p := range pairs {
		c, err := CompareVersions(p[0], p[1])
		require.NoError(t, err)
		assert.Negative(t, c, "%s < %s", p[0], p[1])
		assert.NoError(t, exec.Command("dpkg", "--compare-versions", p[0], "lt", p[1]).Run(), "dpkg: %s lt %s", p[0], p[1])
	}
}

func TestCheckDest(t *testing.T) {
	for _, ok := range []string{"/usr/bin/x", "/opt/cni/bin/istio-cni", "/a"} {
		assert.NoError(t, CheckDest(ok), ok)
	}
	for dest, reason := range map[string]string{
		"":               "empty",
		"usr/bin/x":      "not absolute",
		"./usr/bin/x":    "not absolute",
		"/usr/../etc/x":  "'..'",
		"/../etc/passwd": "'..'",
		"/usr/bin/..":    "'..'",
		"/":              "package root",
		"/usr/bin/":      "ends with '/'",
		"/usr//bin/x":    "not clean",
		"/usr/./bin/x":   "not clean",
		"/usr/bin/x\ny":  "control character",
		"/usr\\bin\\x":   "backslash",
	} {
		err := CheckDest(dest)
		if assert.Error(t, err, "%q", dest) {
			assert.Contains(t, err.Error(), reason, "%q", dest)
		}
	}
}

// TestValidate: each bad input is refused before anything is built, with the
// field it is in.
func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(p *Package)
		fields []string
		msg    string
	}{
		{"bad version", func(p *Package) { p.Version = "1.0_1" }, []string{"version"}, `version "1.0_1": '_' is not allowed`},
		{"bad name", func(p *Package) { p.Name = "Hello_World" }, []string{"name"}, "package name"},
		{"bad maintainer", func(p *Package) { p.Maintainer = "nobody" }, []string{"maintainer"}, "Full Name <email@address>"},
		{"long synopsis", func(p *Package) { p.Synopsis = strings.Repeat("x", 81) }, []string{"synopsis"}, "80 characters"},
		{"bad priority", func(p *Package) { p.Priority = "urgent" }, []string{"priority"}, "one of"},
		{"bad depends", func(p *Package) { p.Depends = []string{"a, b"} }, []string{"depends[0]"}, "no commas"},
		{"bad relation", func(p *Package) { p.Depends = []string{"foo (>> )"} }, []string{"depends[0]"}, "relation"},
		{"bad operator", func(p *Package) { p.Recommends = []string{"foo (=> 1.0)"} }, []string{"recommends[0]"}, "not a Debian package relation"},
		{"bad relation name", func(p *Package) { p.Suggests = []string{"ab | Foo"} }, []string{"suggests[0]"}, `"Foo" is not a package name`},
		{"reserved extra", func(p *Package) { p.Extra = map[string]string{"Version": "2"} }, []string{"extra.Version"}, "own field"},
		{"no copyright", func(p *Package) { p.Copyright = nil }, []string{"copyright"}, "policy 12.5"},
		{"no mtime", func(p *Package) { p.MTime = time.Time{} }, []string{"mtime"}, "SOURCE_DATE_EPOCH"},
		{"outside root", func(p *Package) { p.Files[0].Dest = "/usr/../../etc/passwd" }, []string{"files[0].dest"}, "inside the package root"},
		{"relative", func(p *Package) { p.Files[0].Dest = "usr/bin/x" }, []string{"files[0].dest"}, "not absolute"},
		{"duplicate", func(p *Package) { p.Files[1].Dest = p.Files[0].Dest }, []string{"files[1].dest"}, "the same path as files[0]"},
		{"file under file", func(p *Package) { p.Files[1].Dest = p.Files[0].Dest + "/x" }, []string{"files[1].dest"}, "which is a file, not a directory"},
		{"generated path", func(p *Package) { p.Files[1].Dest = "/usr/share/doc/hello-sailmaker/copyright" }, []string{"files[1].dest"}, "written by the package builder"},
		{"missing source", func(p *Package) { p.Files[0].Source = "/nonexistent/out/linux_amd64/istio-cni" }, []string{"files[0].source"}, "no such file"},
		{"directory source", func(p *Package) { p.Files[0].Source = os.TempDir() }, []string{"files[0].source"}, "not a regular file"},
		{"no mode", func(p *Package) { p.Files[0].Mode = 0 }, []string{"files[0].mode"}, "0755"},
		{"setuid", func(p *Package) { p.Files[0].Mode = 0o4755 | os.ModeSetuid }, []string{"files[0].mode"}, "no setuid"},
		{"source and data", func(p *Package) { p.Files[0].Data = []byte("x") }, []string{"files[0].source"}, "not both"},
		{"neither", func(p *Package) { p.Files[1].Data = nil }, []string{"files[1].source"}, "give the file"},
		{"bad override", func(p *Package) { p.LintianOverrides = []LintianOverride{{Tag: "Foo Bar"}} }, []string{"lintianOverrides[0].tag", "lintianOverrides[0].reason"}, "lintian tag"},
		{"several", func(p *Package) { p.Version = ""; p.Files[0].Dest = "x" }, []string{"version", "files[0].dest"}, "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPackage(t)
			c.change(&p)
			err := p.Validate()
			var verr ValidationError
			require.True(t, errors.As(err, &verr), "%v", err)
			assert.Equal(t, c.fields, verr.Fields())
			assert.Contains(t, err.Error(), c.msg)
			for _, line := range strings.Split(err.Error(), "\n") {
				assert.NotEmpty(t, line)
			}
			// Build refuses it too, and writes nothing.
			out := filepath.Join(t.TempDir(), "x.deb")
			assert.Error(t, WriteFile(context.Background(), out, p))
			_, statErr := os.Stat(out)
			assert.True(t, os.IsNotExist(statErr), "nothing written on bad input")
		})
	}
}

func TestSymlinkSourceIsFollowed(t *testing.T) {
	p := testPackage(t)
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(p.Files[0].Source, link))
	_, direct := buildFile(t, p)
	p.Files[0].Source = link
	_, viaLink := buildFile(t, p)
	assert.Equal(t, direct, viaLink, "a symlinked source packages the file it points to")
}
