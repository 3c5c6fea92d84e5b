package builder

import (
	"testing"

	"github.com/containerd/containerd/v2/pkg/filters"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// usage is a BuildKit cache record as its prune and disk-usage filters see
// it (the fields cacheMountFilter uses).
type usage struct{ typ, desc string }

func (u usage) Field(path []string) (string, bool) {
	switch path[0] {
	case "type":
		return u.typ, u.typ != ""
	case "description":
		return u.desc, u.desc != ""
	}
	return "", false
}

// The filter that removes --check-reproducible's cache mounts parses as
// BuildKit parses it and selects the records of that Go build cache and
// its out/ tree only: not a mount
// whose id merely starts with the same digits, not the regular Go build
// cache, not a record of another type.
func TestCacheMountFilter(t *testing.T) {
	id := checkCacheIDPrefix + "1764518400000000001"
	f, err := filters.Parse(cacheMountFilter(id))
	require.NoError(t, err, cacheMountFilter(id))
	mount := func(id string) usage {
		return usage{"exec.cachemount", `cached mount /root/.cache/go-build from exec /bin/sh -euc make with id "` + id + `"`}
	}
	assert.True(t, f.Match(mount(id)))
	assert.True(t, f.Match(mount(OutCacheID(id))), "the out/ tree kept beside it")
	assert.False(t, f.Match(mount(OutCacheID(id)+"2")))
	assert.False(t, f.Match(mount(id+"2")))
	assert.False(t, f.Match(mount("sailmaker-gocache-0123456789abcdef")))
	assert.False(t, f.Match(usage{"regular", mount(id).desc}))
}
