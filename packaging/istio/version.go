package istio

import (
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Version is an Istio release version, MAJOR.MINOR.PATCH with an optional
// semver pre-release ("-beta.1") and build metadata ("+...").
type Version struct {
	Major, Minor, Patch uint64
	Pre, Meta           string

	raw string
	sv  *semver.Version
}

// maxComponent bounds each numeric part, so that a version's weight (see
// PackageVersion) stays exact.
const maxComponent = 999

// ParseVersion parses an Istio version ("1.24.2", "1.25.0-beta.1"). No
// leading "v", no missing parts.
func ParseVersion(s string) (Version, error) {
	sv, err := semver.StrictNewVersion(s)
	if err != nil {
		return Version{}, fmt.Errorf("not an Istio version MAJOR.MINOR.PATCH (e.g. 1.24.2 or 1.25.0-beta.1): %v", err)
	}
	if sv.Major() > maxComponent || sv.Minor() > maxComponent || sv.Patch() > maxComponent {
		return Version{}, fmt.Errorf("each part of the version must be at most %d", maxComponent)
	}
	return Version{Major: sv.Major(), Minor: sv.Minor(), Patch: sv.Patch(), Pre: sv.Prerelease(), Meta: sv.Metadata(), raw: s, sv: sv}, nil
}

func (v Version) String() string { return v.raw }

// MinorLine is "MAJOR.MINOR", the release line.
func (v Version) MinorLine() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Compare orders versions by semver precedence (a pre-release before its
// release); build metadata breaks ties, so the order is total.
func (v Version) Compare(o Version) int {
	if c := v.sv.Compare(o.sv); c != 0 {
		return c
	}
	return strings.Compare(v.Meta, o.Meta)
}

// weight is MAJOR·10⁶ + MINOR·10³ + PATCH.
func (v Version) weight() uint64 { return v.Major*1_000_000 + v.Minor*1_000 + v.Patch }

// sortNewestFirst sorts versions newest first.
func sortNewestFirst(vs []Version) {
	sort.Slice(vs, func(i, j int) bool { return vs[i].Compare(vs[j]) > 0 })
}

// CommandName is the name istioctl of version v is installed under:
// "istioctl-" and the version without its dots (1.9.5 → istioctl-195,
// 1.24.2 → istioctl-1242, 1.25.0-beta.1 → istioctl-1250-beta1).
func CommandName(version string) string {
	return "istioctl-" + strings.ReplaceAll(version, ".", "")
}
