// Package version says which sailmaker this is: its version and commit
// (stamped by the Makefile with -ldflags -X from git, else read from the Go
// build info), the Go it was built with, and the BuildKit it pins.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the Makefile (-ldflags -X github.com/sailmaker/sailmaker/internal/version.version=…).
var (
	// version is `git describe --tags --always --dirty`.
	version string
	// commit is `git rev-parse HEAD`.
	commit string
	// buildkit is the Makefile's BUILDKIT_VERSION, the one pin of BuildKit.
	buildkit string
)

// BuildKitModule is the module of the BuildKit client sailmaker links.
const BuildKitModule = "github.com/moby/buildkit"

// Info is what `sailmaker version` prints.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// Modified says the tree had uncommitted changes.
	Modified bool     `json:"modified,omitempty"`
	Go       string   `json:"go"`
	Platform string   `json:"platform"`
	BuildKit BuildKit `json:"buildkit"`
}

// BuildKit is the BuildKit version sailmaker was built for.
type BuildKit struct {
	// Pinned is BUILDKIT_VERSION from the Makefile (empty when the binary
	// was not built by it).
	Pinned string `json:"pinned,omitempty"`
	// Module is the version of github.com/moby/buildkit linked in.
	Module string `json:"module,omitempty"`
}

// Get reads the stamped values, and the build info for what is not
// stamped.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(bi, version, commit, buildkit)
}

func get(bi *debug.BuildInfo, version, commit, pinned string) Info {
	i := Info{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	i.BuildKit.Pinned = pinned
	if strings.HasSuffix(version, "-dirty") {
		i.Modified = true
	}
	if bi != nil {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && i.Commit == "":
				i.Commit = s.Value
			case s.Key == "vcs.modified" && commit == "":
				i.Modified = s.Value == "true"
			}
		}
		for _, d := range bi.Deps {
			if d.Path == BuildKitModule {
				i.BuildKit.Module = d.Version
				if d.Replace != nil {
					i.BuildKit.Module = d.Replace.Version
				}
			}
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	return i
}

// Check reports a binary whose pinned BuildKit is not the one it links:
// built from a tree whose go.mod and Makefile disagree.
func (i Info) Check() error {
	if i.BuildKit.Pinned != "" && i.BuildKit.Module != "" && i.BuildKit.Pinned != i.BuildKit.Module {
		return fmt.Errorf("this sailmaker was built for BuildKit %s (BUILDKIT_VERSION in the Makefile) but links %s %s: `make check-pins` says how to align them",
			i.BuildKit.Pinned, BuildKitModule, i.BuildKit.Module)
	}
	return nil
}

// BuildKitVersion is the pinned BuildKit version, else the linked one.
func (i Info) BuildKitVersion() string {
	if i.BuildKit.Pinned != "" {
		return i.BuildKit.Pinned
	}
	return i.BuildKit.Module
}

// String is the version with the commit when the version does not name
// it, and +dirty for a modified tree: "v0.3.0", "devel 0123abcd…+dirty".
func (i Info) String() string {
	s := i.Version
	if i.Commit != "" && !strings.Contains(s, i.Commit[:min(7, len(i.Commit))]) {
		s += " " + i.Commit
		if i.Modified {
			s += "+dirty"
		}
	}
	return s
}
