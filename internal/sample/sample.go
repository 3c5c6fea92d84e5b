// Package sample makes an Istio-shaped upstream of sailmaker's own: a git
// repository copied from testdata/upstream (a tiny Go module istio.io/istio
// with Istio's build interface: Makefile, bin/init.sh, istio.deps), a stand-in
// Envoy tarball, an in-process artifact server and a recipe for all of it.
//
// Everything here returns errors and needs no testing.TB (NewUpstream,
// BuildEnvoyTarball, RenderRecipe, DownloadModules, StartArtifactServer; the
// *From variants take explicit testdata paths): `sailmaker demo` and
// `sailmaker bench` use it, so it must never import testing (the binary links
// nothing that does). Tests use the wrappers in internal/fixture (Upstream,
// EnvoyTarball, WriteRecipe, ...), which call these and fail the test on error.
//
// Nothing here reaches the Internet. Building the stand-in Envoy needs the Go
// toolchain; DownloadModules needs a module proxy (or the host's module cache).
package sample

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// DefaultTag is the tag NewUpstream creates unless told otherwise.
const DefaultTag = "1.0.0"

// DefaultCommitTime is the author and committer time (Unix seconds) of the
// fixture's first commit unless told otherwise: istio 1.24.2's commit time.
const DefaultCommitTime int64 = 1734146883

// Identity of every commit and tag the fixture makes.
const (
	GitName  = "Sailmaker Fixture"
	GitEmail = "fixture@sailmaker.invalid"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// ModuleRoot is the root of the sailmaker module: the nearest directory at or
// above the working directory whose go.mod declares github.com/sailmaker/sailmaker.
// Tests run in their package's directory, so this works from any package.
func ModuleRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = fmt.Errorf("finding the sailmaker module root: %w", err)
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && isSailmakerGoMod(data) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("finding the sailmaker module root: no go.mod of github.com/sailmaker/sailmaker at or above the working directory")
				return
			}
			dir = parent
		}
	})
	return rootDir, rootErr
}

func isSailmakerGoMod(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == "github.com/sailmaker/sailmaker" {
			return true
		}
	}
	return false
}

// TestdataDir is the absolute path of the sailmaker module's testdata
// directory, found through ModuleRoot (so from the working directory). Code
// that runs outside the module's tree (the demo command) passes explicit
// paths to the *From functions instead.
func TestdataDir() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "testdata"), nil
}

// TestdataPath is TestdataDir joined with a slash-separated rel.
func TestdataPath(rel string) (string, error) {
	dir, err := TestdataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.FromSlash(rel)), nil
}

// gitEnv is the environment of every git command the fixture runs: no user or
// system configuration, a fixed identity and the given time for commits and tags.
func gitEnv(unixTime int64) []string {
	date := fmt.Sprintf("@%d +0000", unixTime)
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME="+GitName,
		"GIT_AUTHOR_EMAIL="+GitEmail,
		"GIT_COMMITTER_NAME="+GitName,
		"GIT_COMMITTER_EMAIL="+GitEmail,
		"GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_DATE="+date,
		"GIT_TERMINAL_PROMPT=0",
	)
}

// runGit runs git in dir and returns its trimmed standard output.
func runGit(dir string, unixTime int64, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(unixTime)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s in %s: %w\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}
