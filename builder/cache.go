package builder

import (
	"github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
)

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

// gatewayCacheImports is imports as a gateway solve request takes them: a
// gateway build's own solves import only what they are given.
func gatewayCacheImports(imports []client.CacheOptionsEntry) []gateway.CacheOptionsEntry {
	var out []gateway.CacheOptionsEntry
	for _, im := range imports {
		out = append(out, gateway.CacheOptionsEntry{Type: im.Type, Attrs: im.Attrs})
	}
	return out
}
