package version

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func buildInfo(version string, settings map[string]string, buildkit string) *debug.BuildInfo {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/sailmaker/sailmaker", Version: version}}
	for k, v := range settings {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
	}
	bi.Deps = append(bi.Deps, &debug.Module{Path: BuildKitModule, Version: buildkit})
	return bi
}

func TestStampedValuesWin(t *testing.T) {
	bi := buildInfo("(devel)", map[string]string{"vcs.revision": "ffff", "vcs.modified": "false"}, "v0.33.1")
	i := get(bi, "v1.2.0-3-gabcdef0-dirty", "abcdef0123456789", "v0.33.1")
	assert.Equal(t, "v1.2.0-3-gabcdef0-dirty", i.Version)
	assert.Equal(t, "abcdef0123456789", i.Commit)
	assert.True(t, i.Modified, "-dirty from git describe")
	assert.Equal(t, BuildKit{Pinned: "v0.33.1", Module: "v0.33.1"}, i.BuildKit)
	assert.NoError(t, i.Check())
	assert.Equal(t, "v1.2.0-3-gabcdef0-dirty", i.String(), "the version names the commit already")
	assert.Regexp(t, `^go1\.`, i.Go)
}

func TestBuildInfoFallback(t *testing.T) {
	bi := buildInfo("(devel)", map[string]string{"vcs.revision": "0123456789abcdef", "vcs.modified": "true"}, "v0.33.1")
	i := get(bi, "", "", "")
	assert.Equal(t, "devel", i.Version)
	assert.Equal(t, "0123456789abcdef", i.Commit)
	assert.True(t, i.Modified)
	assert.Equal(t, "v0.33.1", i.BuildKitVersion(), "the module's version when nothing is pinned")
	assert.Equal(t, "devel 0123456789abcdef+dirty", i.String())

	// go install module@version gives a module version.
	i = get(buildInfo("v0.4.0", nil, "v0.33.1"), "", "", "")
	assert.Equal(t, "v0.4.0", i.Version)
	assert.Empty(t, i.Commit)
	assert.Equal(t, "v0.4.0", i.String())
}

func TestPinMismatchIsReported(t *testing.T) {
	i := get(buildInfo("(devel)", nil, "v0.30.0"), "v1", "c", "v0.33.1")
	err := i.Check()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "built for BuildKit v0.33.1 (BUILDKIT_VERSION in the Makefile) but links github.com/moby/buildkit v0.30.0")
	assert.Equal(t, "v0.33.1", i.BuildKitVersion())
}
