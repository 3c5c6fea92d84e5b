package builder

import "github.com/moby/buildkit/client"

// registryCache is BuildKit's registry cache at ref (type=registry,
// mode=max: every step's result, not only the last), imported before the
// compile and exported after it, so that a worker that never built a
// line reuses what another worker built. The Go build cache mount is not
// part of it: it stays on its worker. A failed export does not fail the
// build. Empty ref: no cache.
func registryCache(ref string) (imports, exports []client.CacheOptionsEntry) {
	if ref == "" {
		return nil, nil
	}
	imports = []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": ref}}}
	exports = []client.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{
		"ref": ref, "mode": "max", "image-manifest": "true", "oci-mediatypes": "true", "ignore-error": "true",
	}}}
	return imports, exports
}
