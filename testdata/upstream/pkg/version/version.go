// Package version holds the build information that the Makefile stamps into
// the fixture's binaries with -ldflags -X (see common/scripts/report_build_info.sh).
package version

import (
	"fmt"
	"runtime"

	"github.com/google/uuid"
)

// Set at link time with -X istio.io/istio/pkg/version.<name>=<value>.
var (
	buildVersion     = "unknown"
	buildGitRevision = "unknown"
	buildStatus      = "unknown"
	buildTag         = "unknown"
)

// BuildInfo describes the binary; its JSON is istio's.
type BuildInfo struct {
	Version       string `json:"version"`
	GitRevision   string `json:"revision"`
	GolangVersion string `json:"golang_version"`
	BuildStatus   string `json:"status"`
	GitTag        string `json:"tag"`
	BuildID       string `json:"-"`
}

// Info is the build information of this binary.
var Info = BuildInfo{
	Version:       buildVersion,
	GitRevision:   buildGitRevision,
	GolangVersion: runtime.Version(),
	BuildStatus:   buildStatus,
	GitTag:        buildTag,
	BuildID:       buildID(buildVersion, buildGitRevision),
}

// buildID is a name-based (SHA-1, version 5) UUID of the version and revision:
// the same inputs always give the same id.
func buildID(version, revision string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("istio.io/istio@"+version+"+"+revision)).String()
}

// String renders the build info on one line, in Go's %#v style.
func (b BuildInfo) String() string {
	return fmt.Sprintf("version.BuildInfo{Version:%q, GitRevision:%q, GolangVersion:%q, BuildStatus:%q, GitTag:%q, BuildID:%q}",
		b.Version, b.GitRevision, b.GolangVersion, b.BuildStatus, b.GitTag, b.BuildID)
}
