package registry

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Errors CheckRef wraps, for errors.Is.
var (
	// ErrDockerHub is returned for references to Docker Hub.
	ErrDockerHub = errors.New("Docker Hub is never used; build the image into the internal registry")
	// ErrNotQualified is returned for references that do not name a registry.
	ErrNotQualified = errors.New("not fully qualified: it must start with a registry host, such as ${REGISTRY}/")
	// ErrRegistryNotAllowed is returned for registries outside the allow-list.
	ErrRegistryNotAllowed = errors.New("registry is not allowed")
)

var dockerHubHosts = map[string]bool{
	"docker.io":               true,
	"index.docker.io":         true,
	"registry-1.docker.io":    true,
	"registry.hub.docker.com": true,
}

// CheckRef checks that ref is a fully qualified image reference (with a
// registry host and a tag or digest) on one of the allowed registries
// (host[:port], compared without regard to case). Docker Hub is refused even
// when allowed.
func CheckRef(ref string, allowed []string) error {
	if ref == "" {
		return errors.New("image reference is empty")
	}
	if strings.ContainsAny(ref, " \t\r\n") {
		return fmt.Errorf("image reference %q contains whitespace", ref)
	}
	first, _, hasSlash := strings.Cut(ref, "/")
	if !hasSlash || !(first == "localhost" || strings.ContainsAny(first, ".:")) {
		return fmt.Errorf("image reference %q is %w", ref, ErrNotQualified)
	}
	if isDockerHub(first) {
		return fmt.Errorf("image reference %q: %w", ref, ErrDockerHub)
	}
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		if _, weakErr := name.ParseReference(ref); weakErr == nil {
			return fmt.Errorf("image reference %q names neither a tag nor a digest", ref)
		}
		return fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	reg := r.Context().RegistryStr()
	if isDockerHub(reg) {
		return fmt.Errorf("image reference %q: %w", ref, ErrDockerHub)
	}
	for _, a := range allowed {
		if strings.EqualFold(a, reg) {
			return nil
		}
	}
	if len(allowed) == 0 {
		return fmt.Errorf("image reference %q: %w: no registry is allowed", ref, ErrRegistryNotAllowed)
	}
	return fmt.Errorf("image reference %q: %w: %s is not among %s (add it to registry.allow in the configuration)",
		ref, ErrRegistryNotAllowed, reg, strings.Join(allowed, ", "))
}

func isDockerHub(hostport string) bool {
	host := strings.ToLower(hostport)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return dockerHubHosts[host]
}
