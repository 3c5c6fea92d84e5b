package istio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sailmaker/sailmaker/packaging/deb"
)

// IstioctlPackageName is the default name of the multi-version package.
const IstioctlPackageName = "istioctl-versions"

// Istioctl is one built istioctl binary available for the package.
type Istioctl struct {
	// Version is the Istio release it was built from (what
	// `istioctl version --remote=false` reports), e.g. 1.24.2.
	Version string
	// Path is the binary on disk.
	Path string
	// SHA256 (hex), when set, must be the file's: the digest the build
	// recorded, checked again before packaging.
	SHA256 string
	// Time is its source's commit time; the package's time is the newest
	// of the kept binaries'.
	Time time.Time
}

// Entry is one istioctl in the package, as its versions file lists it.
type Entry struct {
	Version string // Istio version, e.g. 1.24.2
	Command string // /usr/bin/istioctl-1242
	SHA256  string // hex sha256 of the binary
}

// Previous describes the istioctl package published before, so that a new
// one gets a higher version whenever its content differs (see
// IstioctlPackage). PreviousFromDeb reads it from the .deb.
type Previous struct {
	// Version is its Debian version.
	Version string
	// Entries are the istioctl binaries it holds.
	Entries []Entry
	// SHA256 is the .deb's sha256 (hex); optional. With it, a package with
	// the same binaries but other bytes (another maintainer, say) also gets a
	// new version.
	SHA256 string
}

// IstioctlSet is the input of IstioctlPackage.
type IstioctlSet struct {
	// Name is the package name (default istioctl-versions).
	Name string
	// Binaries are all istioctl binaries available, one per version.
	Binaries []Istioctl
	// Retention selects which of them the package keeps (default: all).
	Retention Retention
	// Previous is the package published before, if any.
	Previous *Previous
	// Architecture is the Debian architecture (default amd64).
	Architecture string
	// Maintainer is "Full Name <email>".
	Maintainer string
}

// IstioctlResult is the package IstioctlPackage made.
type IstioctlResult struct {
	// Package is what was built (its Version is the one chosen).
	Package *deb.Package
	// Deb is the .deb; SHA256 its sha256 (hex).
	Deb    []byte
	SHA256 string
	// Kept are the binaries in the package, newest first; Dropped the
	// versions retention left out, newest first.
	Kept    []Entry
	Dropped []string
	// Unchanged is true when the package is the one Previous describes
	// (same version, and same bytes where Previous.SHA256 was given).
	Unchanged bool
}

// VersionsFile is where the package lists what it holds:
// /usr/share/<name>/versions.
func VersionsFile(name string) string { return "/usr/share/" + name + "/versions" }

// PackageVersion is the version a package holding these Istio versions
// gets, before comparing with a previous package:
//
//	<newest>+<count>.<weight>
//
// where <newest> is the newest version held (in Debian form, see
// DebianVersion), <count> how many are held, and <weight> the sum over
// them of MAJOR·10⁶ + MINOR·10³ + PATCH. The same set always gives the
// same version. Adding a version gives a higher one (a newer <newest>, or
// a higher <count>), and so does adding a version while retention drops an
// older one of the same line (a higher <weight>); e.g. 1.24.2 and 1.23.4
// give 1.24.2+2.2047006.
func PackageVersion(versions []Version) (string, error) {
	if len(versions) == 0 {
		return "", fmt.Errorf("no istioctl versions to package")
	}
	sorted := append([]Version(nil), versions...)
	sortNewestFirst(sorted)
	newest, err := DebianVersion(sorted[0].String())
	if err != nil {
		return "", err
	}
	var weight uint64
	for _, v := range sorted {
		weight += v.weight()
	}
	return fmt.Sprintf("%s+%d.%d", newest, len(sorted), weight), nil
}

var bumpRE = regexp.MustCompile(`^(.*)\+r([0-9]+)$`)

// bumpVersion returns a version just above v: v+r1, or +r<N+1> when v
// already ends in +r<N>.
func bumpVersion(v string) string {
	if m := bumpRE.FindStringSubmatch(v); m != nil {
		n, err := strconv.Atoi(m[2])
		if err == nil {
			return fmt.Sprintf("%s+r%d", m[1], n+1)
		}
	}
	return v + "+r1"
}

// IstioctlPackage chooses which binaries to keep (s.Retention), checks
// them, chooses the package's version and builds the .deb: each kept
// binary as /usr/bin/istioctl-<version without dots> (see CommandName),
// the list of versions in the description and in VersionsFile(name), one
// line per binary: "<version> <command> <sha256>".
//
// Refused before anything is built: a binary that is missing, is not a Go
// istioctl for linux/<arch>, or does not match its SHA256; a version given
// twice; two kept versions with the same command name (1.1.10 and 1.11.0
// are both istioctl-1110: keep only one, with Retention.Versions).
//
// The version is PackageVersion of the kept versions, unless s.Previous
// says otherwise: the same binaries as Previous keep Previous.Version; other
// binaries whose derived version would not be above Previous.Version (an
// explicit list that dropped versions, a binary rebuilt with new bytes) get
// Previous.Version+r1 (+r2, ...). So the version rises whenever the content
// changes, and the same binaries give the same version and the same bytes.
func IstioctlPackage(ctx context.Context, s IstioctlSet) (*IstioctlResult, error) {
	if s.Name == "" {
		s.Name = IstioctlPackageName
	}
	if s.Architecture == "" {
		s.Architecture = "amd64"
	}
	var errs deb.ValidationError
	if err := deb.CheckPackageName(s.Name); err != nil {
		errs = append(errs, fieldErr("name", s.Name, "%v", err))
	}
	if err := s.Retention.Validate(); err != nil {
		errs = append(errs, fieldErr("retention", s.Retention.String(), "%v", err))
	}
	if len(s.Binaries) == 0 {
		errs = append(errs, fieldErr("binaries", "", "no istioctl binaries given"))
	}
	byVersion := map[string]int{}
	var versions []Version
	for i, b := range s.Binaries {
		field := fmt.Sprintf("binaries[%d]", i)
		v, err := ParseVersion(b.Version)
		if err != nil {
			errs = append(errs, fieldErr(field+".version", b.Version, "%v", err))
			continue
		}
		if j, dup := byVersion[b.Version]; dup {
			errs = append(errs, fieldErr(field+".version", b.Version, "given twice (also binaries[%d]); give one binary per version", j))
			continue
		}
		byVersion[b.Version] = i
		versions = append(versions, v)
		if b.Time.IsZero() {
			errs = append(errs, fieldErr(field+".time", "", "not set; give the commit time of the source it was built from"))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	keep, drop, err := s.Retention.Select(versions)
	if err != nil {
		return nil, deb.ValidationError{fieldErr("retention", s.Retention.String(), "%v", err)}
	}
	if len(keep) == 0 {
		return nil, deb.ValidationError{fieldErr("retention", s.Retention.String(), "keeps no istioctl")}
	}
	// Only the kept binaries are read: a dropped one may be gone already.
	byCommand := map[string]string{}
	var entries []Entry
	var mtime time.Time
	for _, v := range keep {
		i := byVersion[v.String()]
		b := s.Binaries[i]
		field := fmt.Sprintf("binaries[%d]", i)
		cmd := CommandName(b.Version)
		if other, clash := byCommand[cmd]; clash {
			errs = append(errs, fieldErr(field+".version", b.Version,
				"istioctl %s and %s would both be /usr/bin/%s; keep only one of them (retention versions=...)", other, b.Version, cmd))
			continue
		}
		byCommand[cmd] = b.Version
		sum, err := checkBinary(field+".path", b.Path, "istioctl", s.Architecture)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b.SHA256 != "" && !strings.EqualFold(strings.TrimPrefix(b.SHA256, "sha256:"), sum) {
			errs = append(errs, fieldErr(field+".sha256", b.SHA256, "%s has sha256 %s: the binary is not the one the build recorded", b.Path, sum))
			continue
		}
		entries = append(entries, Entry{Version: b.Version, Command: "/usr/bin/" + cmd, SHA256: sum})
		if b.Time.After(mtime) {
			mtime = b.Time
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	version, err := PackageVersion(keep)
	if err != nil {
		return nil, err
	}
	prev := s.Previous
	if prev != nil {
		if err := deb.CheckVersion(prev.Version); err != nil {
			return nil, deb.ValidationError{fieldErr("previous.version", prev.Version, "%v", err)}
		}
		if sameEntries(entries, prev.Entries) {
			version = prev.Version
		} else if c, _ := deb.CompareVersions(version, prev.Version); c <= 0 {
			version = bumpVersion(prev.Version)
		}
	}

	p := istioctlDeb(s, version, entries, mtime)
	data, err := deb.Build(ctx, *p)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	res := &IstioctlResult{Package: p, Deb: data, SHA256: hex.EncodeToString(sum[:]), Kept: entries}
	if prev != nil && version == prev.Version {
		res.Unchanged = true
		if prev.SHA256 != "" && !strings.EqualFold(prev.SHA256, res.SHA256) {
			// Same binaries, other bytes: a new version all the same.
			p = istioctlDeb(s, bumpVersion(prev.Version), entries, mtime)
			if data, err = deb.Build(ctx, *p); err != nil {
				return nil, err
			}
			sum = sha256.Sum256(data)
			res = &IstioctlResult{Package: p, Deb: data, SHA256: hex.EncodeToString(sum[:]), Kept: entries}
		}
	}
	for _, v := range drop {
		res.Dropped = append(res.Dropped, v.String())
	}
	return res, nil
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	index := map[string]Entry{}
	for _, e := range b {
		index[e.Version] = e
	}
	for _, e := range a {
		o, ok := index[e.Version]
		if !ok || o.Command != e.Command || !strings.EqualFold(o.SHA256, e.SHA256) {
			return false
		}
	}
	return true
}

// istioctlDeb is the package for entries (newest first) at version.
func istioctlDeb(s IstioctlSet, version string, entries []Entry, mtime time.Time) *deb.Package {
	var list, held, versionsFile strings.Builder
	versionsFile.WriteString("# version command sha256\n")
	for i, e := range entries {
		fmt.Fprintf(&list, "%s: Istio %s\n", e.Command, e.Version)
		if i > 0 {
			held.WriteString(", ")
		}
		held.WriteString(e.Version)
		fmt.Fprintf(&versionsFile, "%s %s %s\n", e.Version, e.Command, e.SHA256)
	}
	files := make([]deb.File, 0, len(entries)+1)
	for _, e := range entries {
		files = append(files, deb.File{Dest: e.Command, Source: s.Binaries[indexOf(s.Binaries, e.Version)].Path, Mode: 0o755})
	}
	files = append(files, deb.File{Dest: VersionsFile(s.Name), Data: []byte(versionsFile.String()), Mode: 0o644})
	return &deb.Package{
		Name:         s.Name,
		Version:      version,
		Architecture: s.Architecture,
		Maintainer:   s.Maintainer,
		Synopsis:     "Istio command-line tool of several releases, side by side",
		Description: `istioctl, the command-line tool of the Istio service mesh, from several
Istio releases, each installed as /usr/bin/istioctl-<version without
dots>, so that one host can manage clusters that run different Istio
versions. Run the one that matches the cluster's control plane.

This version holds:
` + list.String() + `
The same list, with each binary's sha256, is in ` + VersionsFile(s.Name) + `.`,
		Section:   "admin",
		Priority:  "optional",
		Homepage:  Homepage,
		Files:     files,
		Copyright: apacheCopyright(Source{URL: "https://github.com/istio/istio"}, "istioctl (istioctl/cmd/istioctl) of each release listed in "+VersionsFile(s.Name)+",", mtime.UTC().Year()),
		LintianOverrides: []deb.LintianOverride{
			{Tag: "statically-linked-binary", Context: "usr/bin/istioctl-*", Reason: goStaticReason},
		},
		Changes: []string{"Holds istioctl " + held.String() + "."},
		MTime:   mtime,
	}
}

func indexOf(bins []Istioctl, version string) int {
	for i, b := range bins {
		if b.Version == version {
			return i
		}
	}
	return -1
}

// ParseVersionsFile reads a package's versions file (see VersionsFile).
func ParseVersionsFile(data []byte) ([]Entry, error) {
	var out []Entry
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("versions file line %d: want \"<version> <command> <sha256>\", got %q", n+1, line)
		}
		out = append(out, Entry{Version: f[0], Command: f[1], SHA256: f[2]})
	}
	return out, nil
}

// PreviousFromDeb reads what IstioctlPackage needs to know about a
// published istioctl package: its version, its versions file, its sha256.
func PreviousFromDeb(data []byte) (*Previous, error) {
	info, err := deb.ReadInfo(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	name := info.Control.Get("Package")
	vf, err := deb.ReadDataFile(bytes.NewReader(data), VersionsFile(name))
	if err != nil {
		return nil, fmt.Errorf("%s is not an istioctl package from sailmaker: %w", name, err)
	}
	entries, err := ParseVersionsFile(vf)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &Previous{Version: info.Control.Get("Version"), Entries: entries, SHA256: hex.EncodeToString(sum[:])}, nil
}
