package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ErrRefNotAllowed is the error every refused image reference wraps.
var ErrRefNotAllowed = errors.New("image reference not allowed")

var dockerHub = map[string]bool{
	"docker.io":               true,
	"index.docker.io":         true,
	"registry-1.docker.io":    true,
	"registry.hub.docker.com": true,
}

// CheckRef enforces sailmaker's image policy: a reference must be fully
// qualified (it names its registry) and that registry must be in allowed.
// Docker Hub is refused whatever the allow-list says.
func CheckRef(ref string, allowed []string) error {
	if ref == "" {
		return fmt.Errorf("%w: empty image reference", ErrRefNotAllowed)
	}
	first, _, hasSlash := strings.Cut(ref, "/")
	if !hasSlash || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return fmt.Errorf("%w: %q is not fully qualified: name the internal registry, e.g. ${REGISTRY}/%s (unqualified names resolve to Docker Hub, which sailmaker never uses)", ErrRefNotAllowed, ref, strings.TrimPrefix(ref, "library/"))
	}
	host := strings.ToLower(first)
	if dockerHub[host] || strings.HasSuffix(host, ".docker.io") {
		return fmt.Errorf("%w: %q is on Docker Hub, which sailmaker never uses: build the image into the internal registry", ErrRefNotAllowed, ref)
	}
	if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
		if _, err2 := name.ParseReference(ref); err2 != nil {
			return fmt.Errorf("%w: %q: %v", ErrRefNotAllowed, ref, err2)
		}
	}
	for _, a := range allowed {
		if strings.EqualFold(a, first) {
			return nil
		}
	}
	return fmt.Errorf("%w: registry %q of %q is not an internal registry (allowed: %s); add it to registry.allow in the config if it is one", ErrRefNotAllowed, first, ref, strings.Join(allowed, ", "))
}
