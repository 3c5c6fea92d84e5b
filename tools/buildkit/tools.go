//go:build tools

// Package tools pins the BuildKit daemon and CLI that the Makefile builds
// (make bin/buildkitd bin/buildctl) at the version in ../../Makefile.
package tools

import (
	_ "github.com/moby/buildkit/cmd/buildctl"
	_ "github.com/moby/buildkit/cmd/buildkitd"
)
