package istio

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/fakeistio"
	"github.com/sailmaker/sailmaker/packaging/deb"
	"github.com/sailmaker/sailmaker/packaging/deb/debtest"
)

const maintainer = "Sail Maker <sailmaker@example.org>"

var (
	commitTime = time.Unix(1734146883, 0).UTC()
	binMu      sync.Mutex
	binDir     string
	binCache   = map[string]string{}
)

// TestMain keeps the stand-in binaries built for the package's tests in one
// directory, removed at the end.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sailmaker-istio-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// standIn builds (once per test binary) the stand-in command of version
// for goarch.
func standIn(t *testing.T, command, version, goarch string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	key := command + "/" + version + "/" + goarch
	if p, ok := binCache[key]; ok {
		return p
	}
	p, err := fakeistio.Build(context.Background(), filepath.Join(binDir, goarch, version), command, version, goarch)
	require.NoError(t, err)
	binCache[key] = p
	return p
}

func istioctl(t *testing.T, version string, day int) Istioctl {
	return Istioctl{Version: version, Path: standIn(t, "istioctl", version, "amd64"), Time: commitTime.AddDate(0, 0, day)}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

func writeDeb(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

func cniInput(t *testing.T) CNI {
	return CNI{
		Version:    "1.0.0",
		Plugin:     standIn(t, "istio-cni", "1.0.0", "amd64"),
		Maintainer: maintainer,
		Source:     Source{URL: "https://git.example.org/istio.git", Tag: "1.0.0", Commit: "4b4b0a4e6d1e3d3e0c9a1f0f6a1f1b2c3d4e5f60", Time: commitTime},
	}
}

func TestCNIPackage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := CNIPackage(cniInput(t))
	require.NoError(t, err)
	assert.Equal(t, "istio-cni_1.0.0-1_amd64.deb", p.FileName())
	data, err := deb.Build(ctx, *p)
	require.NoError(t, err)
	again, err := deb.Build(ctx, *p)
	require.NoError(t, err)
	assert.Equal(t, data, again, "istio-cni built twice must be the same bytes")
	path := writeDeb(t, p.FileName(), data)

	info := run(t, "dpkg-deb", "--info", path)
	for _, want := range []string{"Package: istio-cni", "Version: 1.0.0-1", "Architecture: amd64", "Maintainer: " + maintainer,
		"Section: net", "Priority: optional", "Depends: iptables", "Homepage: https://istio.io", "Description: Istio CNI plugin for Kubernetes nodes"} {
		assert.Contains(t, info, want)
	}
	contents := run(t, "dpkg-deb", "--contents", path)
	for _, want := range []string{
		"-rwxr-xr-x root/root", "./opt/cni/bin/istio-cni",
		"./usr/share/doc/istio-cni/README.Debian",
		"./usr/share/doc/istio-cni/examples/istio-cni.conflist-entry.json",
		"./usr/share/doc/istio-cni/copyright",
		"./usr/share/doc/istio-cni/changelog.Debian.gz",
	} {
		assert.Contains(t, contents, want)
	}
	// The packaged plugin is the built one, and runs.
	dir := t.TempDir()
	run(t, "dpkg-deb", "--extract", path, dir)
	out := run(t, filepath.Join(dir, "opt/cni/bin/istio-cni"))
	assert.Contains(t, out, "istio-cni 1.0.0")
	copyright, err := os.ReadFile(filepath.Join(dir, "usr/share/doc/istio-cni/copyright"))
	require.NoError(t, err)
	assert.Contains(t, string(copyright), "Source: https://git.example.org/istio.git, tag 1.0.0, commit 4b4b0a4e")
	assert.Contains(t, string(copyright), "License: Apache-2.0")

	if testing.Short() {
		return // lintian takes seconds: make test runs it
	}
	tags := debtest.Lintian(t, path)
	assert.Empty(t, tags.Errors, "lintian errors:\n%s", tags.Output)
	// Accepted: the package is not uploaded to Debian, there is no ITP bug
	// for its changelog to close.
	assert.Subset(t, []string{"initial-upload-closes-no-bugs"}, tags.Warnings, tags.Output)
	assert.Equal(t, []string{"dir-or-file-in-opt", "statically-linked-binary"}, tags.Overridden, tags.Output)
}

func TestCNIPackageRefusesBadInput(t *testing.T) {
	arm := standIn(t, "istio-cni", "1.0.0", "arm64")
	ctl := standIn(t, "istioctl", "1.0.0", "amd64")
	cases := []struct {
		name   string
		change func(c *CNI)
		field  string
		msg    string
	}{
		{"bad version", func(c *CNI) { c.Version = "v1.0" }, "version", "not an Istio version"},
		{"bad revision", func(c *CNI) { c.Revision = "1_a" }, "revision", "'_' is not allowed in the Debian revision"},
		{"missing plugin", func(c *CNI) { c.Plugin = filepath.Join(t.TempDir(), "out/linux_amd64/istio-cni") }, "plugin", "no such file; was istio-cni built?"},
		{"wrong architecture", func(c *CNI) { c.Plugin = arm }, "plugin", "built for GOARCH=arm64 (Debian arm64), but the package is for amd64"},
		{"wrong program", func(c *CNI) { c.Plugin = ctl }, "plugin", "is the Go program istio.io/istio/istioctl/cmd/istioctl, not istio-cni"},
		{"not go", func(c *CNI) { c.Plugin = "/bin/sh" }, "plugin", "not a Go program"},
		{"no time", func(c *CNI) { c.Source.Time = time.Time{} }, "source.time", "commit time"},
		{"no maintainer", func(c *CNI) { c.Maintainer = "" }, "maintainer", "Full Name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := cniInput(t)
			c.change(&in)
			_, err := CNIPackage(in)
			var verr deb.ValidationError
			require.True(t, errors.As(err, &verr), "%v", err)
			assert.Equal(t, []string{c.field}, verr.Fields())
			assert.Contains(t, err.Error(), c.msg)
		})
	}
	// The architecture of the package follows the plugin's.
	in := cniInput(t)
	in.Plugin, in.Architecture = arm, "arm64"
	p, err := CNIPackage(in)
	require.NoError(t, err)
	assert.Equal(t, "istio-cni_1.0.0-1_arm64.deb", p.FileName())
}

func TestDebianVersion(t *testing.T) {
	for in, want := range map[string]string{"1.24.2": "1.24.2", "1.25.0-beta.1": "1.25.0~beta.1", "1.25.0-rc.0+build.1": "1.25.0~rc.0+build.1"} {
		got, err := DebianVersion(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"v1.24.2", "1.24", "1.24.x", "1.1000.0", ""} {
		_, err := DebianVersion(bad)
		assert.Error(t, err, bad)
	}
	c, err := deb.CompareVersions("1.25.0~beta.1", "1.25.0")
	require.NoError(t, err)
	assert.Negative(t, c, "a pre-release sorts before its release")
}

func TestCommandName(t *testing.T) {
	assert.Equal(t, "istioctl-195", CommandName("1.9.5"))
	assert.Equal(t, "istioctl-1242", CommandName("1.24.2"))
	assert.Equal(t, "istioctl-1250-beta1", CommandName("1.25.0-beta.1"))
}

func TestIstioctlPackage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set := IstioctlSet{Maintainer: maintainer, Binaries: []Istioctl{istioctl(t, "1.0.0", 0), istioctl(t, "1.1.0", 30)}}
	res, err := IstioctlPackage(ctx, set)
	require.NoError(t, err)
	assert.Equal(t, "1.1.0+2.2001000", res.Package.Version)
	assert.Equal(t, "istioctl-versions_1.1.0+2.2001000_amd64.deb", res.Package.FileName())
	assert.Equal(t, []string{"1.1.0", "1.0.0"}, entryVersions(res.Kept))
	assert.Empty(t, res.Dropped)
	sum := sha256.Sum256(res.Deb)
	assert.Equal(t, hex.EncodeToString(sum[:]), res.SHA256)

	// The same set, given in another order: the same version and bytes.
	again, err := IstioctlPackage(ctx, IstioctlSet{Maintainer: maintainer, Binaries: []Istioctl{set.Binaries[1], set.Binaries[0]}})
	require.NoError(t, err)
	assert.Equal(t, res.Deb, again.Deb, "the same istioctl binaries must give the same .deb")

	path := writeDeb(t, res.Package.FileName(), res.Deb)
	info := run(t, "dpkg-deb", "--info", path)
	for _, want := range []string{"Package: istioctl-versions", "Version: 1.1.0+2.2001000", "Architecture: amd64", "Maintainer: " + maintainer,
		"Section: admin", "Priority: optional", "/usr/bin/istioctl-110: Istio 1.1.0", "/usr/bin/istioctl-100: Istio 1.0.0"} {
		assert.Contains(t, info, want)
	}
	contents := run(t, "dpkg-deb", "--contents", path)
	for _, want := range []string{"./usr/bin/istioctl-100", "./usr/bin/istioctl-110", "./usr/share/istioctl-versions/versions",
		"./usr/share/doc/istioctl-versions/copyright", "./usr/share/doc/istioctl-versions/changelog.gz", "2025-01-13"} {
		assert.Contains(t, contents, want)
	}

	dir := t.TempDir()
	run(t, "dpkg-deb", "--extract", path, dir)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		out := run(t, filepath.Join(dir, "usr/bin", CommandName(v)), "version", "--remote=false")
		assert.Equal(t, "client version: "+v+"\n", out)
	}
	vf, err := os.ReadFile(filepath.Join(dir, "usr/share/istioctl-versions/versions"))
	require.NoError(t, err)
	entries, err := ParseVersionsFile(vf)
	require.NoError(t, err)
	assert.Equal(t, res.Kept, entries)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Command))
		require.NoError(t, err)
		s := sha256.Sum256(data)
		assert.Equal(t, hex.EncodeToString(s[:]), e.SHA256, e.Command)
	}

	prev, err := PreviousFromDeb(res.Deb)
	require.NoError(t, err)
	assert.Equal(t, &Previous{Version: res.Package.Version, Entries: res.Kept, SHA256: res.SHA256}, prev)

	if testing.Short() {
		return // lintian takes seconds: make test runs it
	}
	tags := debtest.Lintian(t, path)
	assert.Empty(t, tags.Errors, "lintian errors:\n%s", tags.Output)
	// Accepted: upstream ships no manual page for istioctl (its help is
	// `istioctl --help` and istio.io); making one would mean running the
	// binary at packaging time.
	assert.Equal(t, []string{"no-manual-page"}, tags.Warnings, tags.Output)
	assert.Equal(t, []string{"statically-linked-binary"}, tags.Overridden, tags.Output)
}

func entryVersions(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Version)
	}
	return out
}

// TestIstioctlVersionRises follows a package through releases: each change
// of content gives a version dpkg sees as higher, the same content the same
// version and bytes.
func TestIstioctlVersionRises(t *testing.T) {
	ctx := context.Background()
	build := func(prev *Previous, r Retention, bins ...Istioctl) *IstioctlResult {
		t.Helper()
		res, err := IstioctlPackage(ctx, IstioctlSet{Maintainer: maintainer, Binaries: bins, Retention: r, Previous: prev})
		require.NoError(t, err)
		return res
	}
	prevOf := func(res *IstioctlResult) *Previous {
		p, err := PreviousFromDeb(res.Deb)
		require.NoError(t, err)
		return p
	}
	higher := func(a, b *IstioctlResult) {
		t.Helper()
		require.NoError(t, exec.Command("dpkg", "--compare-versions", b.Package.Version, "gt", a.Package.Version).Run(),
			"dpkg: %s must be above %s", b.Package.Version, a.Package.Version)
	}
	v100, v101, v110, v111 := istioctl(t, "1.0.0", 0), istioctl(t, "1.0.1", 10), istioctl(t, "1.1.0", 20), istioctl(t, "1.1.1", 30)
	perMinor := Retention{NewestPerMinor: 1}

	r1 := build(nil, perMinor, v100, v110)
	assert.Equal(t, "1.1.0+2.2001000", r1.Package.Version)

	// A new release of the newest line.
	r2 := build(prevOf(r1), perMinor, v100, v110, v111)
	assert.Equal(t, "1.1.1+2.2001001", r2.Package.Version)
	assert.Equal(t, []string{"1.1.0"}, r2.Dropped)
	higher(r1, r2)

	// A patch of an older line replaces its predecessor: same newest, same
	// count, a higher weight.
	r3 := build(prevOf(r2), perMinor, v100, v101, v110, v111)
	assert.Equal(t, "1.1.1+2.2001002", r3.Package.Version)
	higher(r2, r3)
	// Built from scratch, without a previous package: the same version and
	// bytes.
	assert.Equal(t, r3.Deb, build(nil, perMinor, v100, v101, v110, v111).Deb)

	// Nothing new: the same version, the same bytes, unchanged.
	r4 := build(prevOf(r3), perMinor, v100, v101, v110, v111)
	assert.True(t, r4.Unchanged)
	assert.Equal(t, r3.Deb, r4.Deb)

	// Keep all: more versions.
	r5 := build(prevOf(r4), Retention{}, v100, v101, v110, v111)
	assert.Equal(t, "1.1.1+4.4002002", r5.Package.Version)
	higher(r4, r5)

	// An explicit list that drops versions would derive a lower version:
	// the previous one +r1 instead.
	r6 := build(prevOf(r5), Retention{Versions: []string{"1.1.1"}}, v100, v101, v110, v111)
	assert.Equal(t, "1.1.1+4.4002002+r1", r6.Package.Version)
	assert.Equal(t, []string{"1.1.1"}, entryVersions(r6.Kept))
	higher(r5, r6)

	// A rebuilt binary (other bytes, same version): new content, new version.
	rebuilt := v111
	var err error
	rebuilt.Path, err = fakeistio.BuildRevision(ctx, t.TempDir(), "istioctl", "1.1.1", "fedcba9876543210fedcba9876543210fedcba98", "amd64")
	require.NoError(t, err)
	r7 := build(prevOf(r6), Retention{Versions: []string{"1.1.1"}}, v100, v101, v110, rebuilt)
	assert.Equal(t, "1.1.1+4.4002002+r2", r7.Package.Version)
	higher(r6, r7)

	// Same binaries, other bytes (another maintainer): a new version too.
	res, err := IstioctlPackage(ctx, IstioctlSet{Maintainer: "Other Person <other@example.org>", Binaries: []Istioctl{v100, v101, v110, rebuilt},
		Retention: Retention{Versions: []string{"1.1.1"}}, Previous: prevOf(r7)})
	require.NoError(t, err)
	assert.Equal(t, "1.1.1+4.4002002+r3", res.Package.Version)
	assert.False(t, res.Unchanged)
}

func TestIstioctlPackageRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	v100, v110 := istioctl(t, "1.0.0", 0), istioctl(t, "1.1.0", 1)
	armctl := Istioctl{Version: "1.2.0", Path: standIn(t, "istioctl", "1.2.0", "arm64"), Time: commitTime}
	cni := Istioctl{Version: "1.3.0", Path: standIn(t, "istio-cni", "1.3.0", "amd64"), Time: commitTime}
	cases := []struct {
		name  string
		set   IstioctlSet
		field string
		msg   string
	}{
		{"no binaries", IstioctlSet{}, "binaries", "no istioctl binaries"},
		{"bad version", IstioctlSet{Binaries: []Istioctl{{Version: "1.0", Path: v100.Path, Time: commitTime}}}, "binaries[0].version", "not an Istio version"},
		{"twice", IstioctlSet{Binaries: []Istioctl{v100, v100}}, "binaries[1].version", "given twice"},
		{"missing", IstioctlSet{Binaries: []Istioctl{{Version: "1.0.0", Path: "/nonexistent/istioctl", Time: commitTime}}}, "binaries[0].path", "no such file"},
		{"arch", IstioctlSet{Binaries: []Istioctl{v100, armctl}}, "binaries[1].path", "GOARCH=arm64"},
		{"not istioctl", IstioctlSet{Binaries: []Istioctl{cni}}, "binaries[0].path", "not istioctl"},
		{"digest", IstioctlSet{Binaries: []Istioctl{{Version: "1.0.0", Path: v100.Path, Time: commitTime, SHA256: strings.Repeat("0", 64)}}}, "binaries[0].sha256", "not the one the build recorded"},
		{"no time", IstioctlSet{Binaries: []Istioctl{{Version: "1.0.0", Path: v100.Path}}}, "binaries[0].time", "commit time"},
		{"retention names a missing version", IstioctlSet{Binaries: []Istioctl{v100, v110}, Retention: Retention{Versions: []string{"1.2.0"}}}, "retention", "istioctl 1.2.0 is not available (available: 1.1.0, 1.0.0)"},
		{"retention contradicts itself", IstioctlSet{Binaries: []Istioctl{v100}, Retention: Retention{NewestPerMinor: 1, Versions: []string{"1.0.0"}}}, "retention", "not both"},
		{"bad name", IstioctlSet{Name: "IstioCtl", Binaries: []Istioctl{v100}}, "name", "package name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.set.Maintainer = maintainer
			_, err := IstioctlPackage(ctx, c.set)
			var verr deb.ValidationError
			require.True(t, errors.As(err, &verr), "%v", err)
			assert.Contains(t, verr.Fields(), c.field)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
	// A dropped binary is not read: retention can leave out what is gone.
	res, err := IstioctlPackage(ctx, IstioctlSet{Maintainer: maintainer, Retention: Retention{NewestPerMinor: 1},
		Binaries: []Istioctl{v110, {Version: "1.1.0-rc.1", Path: "/nonexistent/istioctl", Time: commitTime}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"1.1.0-rc.1"}, res.Dropped)
}

// TestIstioctlCommandNameCollision: 1.1.10 and 1.11.0 would both be
// istioctl-1110 (Istio has had both): refused, unless retention keeps one.
func TestIstioctlCommandNameCollision(t *testing.T) {
	ctx := context.Background()
	a := Istioctl{Version: "1.1.10", Path: standIn(t, "istioctl", "1.1.10", "amd64"), Time: commitTime}
	b := Istioctl{Version: "1.11.0", Path: standIn(t, "istioctl", "1.11.0", "amd64"), Time: commitTime}
	_, err := IstioctlPackage(ctx, IstioctlSet{Maintainer: maintainer, Binaries: []Istioctl{a, b}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "istioctl 1.11.0 and 1.1.10 would both be /usr/bin/istioctl-1110; keep only one of them")

	res, err := IstioctlPackage(ctx, IstioctlSet{Maintainer: maintainer, Binaries: []Istioctl{a, b}, Retention: Retention{Versions: []string{"1.11.0"}}})
	require.NoError(t, err)
	assert.Equal(t, []Entry{{Version: "1.11.0", Command: "/usr/bin/istioctl-1110", SHA256: res.Kept[0].SHA256}}, res.Kept)
	assert.Equal(t, []string{"1.1.10"}, res.Dropped)
}

func TestRetention(t *testing.T) {
	var vs []Version
	for _, s := range []string{"1.22.1", "1.24.0", "1.23.4", "1.24.2", "1.24.1", "1.23.5", "1.25.0-beta.1", "1.25.0", "2.0.0-rc.1"} {
		v, err := ParseVersion(s)
		require.NoError(t, err)
		vs = append(vs, v)
	}
	names := func(vs []Version) string {
		var out []string
		for _, v := range vs {
			out = append(out, v.String())
		}
		return strings.Join(out, " ")
	}
	for setting, want := range map[string][2]string{
		"all":                      {"2.0.0-rc.1 1.25.0 1.25.0-beta.1 1.24.2 1.24.1 1.24.0 1.23.5 1.23.4 1.22.1", ""},
		"":                         {"2.0.0-rc.1 1.25.0 1.25.0-beta.1 1.24.2 1.24.1 1.24.0 1.23.5 1.23.4 1.22.1", ""},
		"newest-per-minor=1":       {"2.0.0-rc.1 1.25.0 1.24.2 1.23.5 1.22.1", "1.25.0-beta.1 1.24.1 1.24.0 1.23.4"},
		"newest-per-minor=2":       {"2.0.0-rc.1 1.25.0 1.25.0-beta.1 1.24.2 1.24.1 1.23.5 1.23.4 1.22.1", "1.24.0"},
		"versions=1.23.4, 1.24.2":  {"1.24.2 1.23.4", "2.0.0-rc.1 1.25.0 1.25.0-beta.1 1.24.1 1.24.0 1.23.5 1.22.1"},
		" versions=1.25.0-beta.1 ": {"1.25.0-beta.1", "2.0.0-rc.1 1.25.0 1.24.2 1.24.1 1.24.0 1.23.5 1.23.4 1.22.1"},
	} {
		r, err := ParseRetention(setting)
		require.NoError(t, err, setting)
		keep, drop, err := r.Select(vs)
		require.NoError(t, err, setting)
		assert.Equal(t, want[0], names(keep), setting)
		assert.Equal(t, want[1], names(drop), setting)
		again, err := ParseRetention(r.String())
		require.NoError(t, err)
		assert.Equal(t, r, again, "String and ParseRetention round-trip")
	}
	for setting, msg := range map[string]string{
		"newest":                 "give all, newest-per-minor=N or versions=",
		"newest-per-minor=0":     "at least 1",
		"newest-per-minor=x":     "at least 1",
		"versions=":              "lists no version",
		"versions=1.24.2,1.24.2": "listed twice",
		"versions=1.24":          "not an Istio version",
		"keep=3":                 "give all",
	} {
		_, err := ParseRetention(setting)
		if assert.Error(t, err, setting) {
			assert.Contains(t, err.Error(), msg, setting)
		}
	}
	_, _, err := Retention{Versions: []string{"1.9.9"}}.Select(vs)
	assert.ErrorContains(t, err, "istioctl 1.9.9 is not available")
}

func TestPackageVersion(t *testing.T) {
	parse := func(ss ...string) []Version {
		var out []Version
		for _, s := range ss {
			v, err := ParseVersion(s)
			require.NoError(t, err)
			out = append(out, v)
		}
		return out
	}
	got, err := PackageVersion(parse("1.23.4", "1.24.2"))
	require.NoError(t, err)
	assert.Equal(t, "1.24.2+2.2047006", got)
	got, err = PackageVersion(parse("1.25.0-beta.1", "1.24.2"))
	require.NoError(t, err)
	assert.Equal(t, "1.25.0~beta.1+2.2049002", got)
	_, err = PackageVersion(nil)
	assert.Error(t, err)
	assert.NoError(t, deb.CheckVersion(got))
	assert.Equal(t, "1.0+r1", bumpVersion("1.0"))
	assert.Equal(t, "1.0+r10", bumpVersion("1.0+r9"))
}
