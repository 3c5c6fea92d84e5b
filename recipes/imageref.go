package recipes

import "github.com/sailmaker/sailmaker/registry"

// Errors CheckImageRef wraps, for errors.Is (the registry package's policy).
var (
	ErrDockerHub          = registry.ErrDockerHub
	ErrNotQualified       = registry.ErrNotQualified
	ErrRegistryNotAllowed = registry.ErrRegistryNotAllowed
)

// CheckImageRef is registry.CheckRef: a reference must be fully qualified
// (registry host and a tag or digest) and on an allowed registry; Docker Hub
// is refused even when allowed.
func CheckImageRef(ref string, allowed []string) error {
	return registry.CheckRef(ref, allowed)
}
