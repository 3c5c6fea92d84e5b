// Package version holds the version upstream's make stamps into Istio's
// binaries with -ldflags -X istio.io/istio/pkg/version.buildVersion=...
package version

var (
	buildVersion     = "unknown"
	buildGitRevision = "unknown"
)

// Version is the release the binary was built from.
func Version() string { return buildVersion }

// Revision is the git commit it was built from.
func Revision() string { return buildGitRevision }
