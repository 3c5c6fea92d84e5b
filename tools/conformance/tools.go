//go:build tools

// Package tools pins the OCI distribution-spec conformance suite that the
// Makefile builds into bin/oci-conformance.test (go test -c) and that
// registry's TestConformance runs against the embedded registry.
package tools

import (
	_ "github.com/opencontainers/distribution-spec/conformance"
)
