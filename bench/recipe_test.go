package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/recipes"
)

// Istio's recipe builds two platforms and two flavours; the benchmark
// compares the paths on what the plain Dockerfile and the floor build too:
// linux/amd64's debug images, with the make targets they need, written out.
// The narrowed recipe is still valid.
func TestOnePlatformPerRepository(t *testing.T) {
	r, err := recipes.Get("istio@1.24.2", recipes.WithRegistry("127.0.0.1:5000"))
	require.NoError(t, err)
	require.True(t, r.Spec.MultiPlatform(), "the test needs a multi-platform recipe")
	data, err := recipes.Marshal(r)
	require.NoError(t, err)
	var raw recipes.Recipe
	require.NoError(t, yaml.Unmarshal(data, &raw))

	onePlatformPerRepository(&raw)
	raw.Spec.Packages, raw.Spec.Source.Patches = nil, nil
	raw.Spec.Make.Targets = imageTargets(&raw)

	assert.Equal(t, []string{"linux/amd64"}, raw.Spec.Platforms)
	assert.Equal(t, "amd64", raw.Spec.Make.Variables["TARGET_ARCH"])
	assert.Equal(t, []string{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent"}, raw.Spec.Make.Targets)
	var names []string
	for _, im := range raw.Spec.Images {
		names = append(names, im.Name)
		assert.Contains(t, im.Base, "/base/bookworm:2", im.Name)
		for _, f := range im.Files {
			assert.NotContains(t, f.From, "${", im.Name)
		}
	}
	assert.Equal(t, []string{"pilot", "proxyv2"}, names)
	_, set := r.Spec.Make.Variables["TARGET_ARCH"]
	assert.False(t, set, "the original recipe is left as it was")

	out, err := yaml.Marshal(&raw)
	require.NoError(t, err)
	_, err = recipes.Parse("bench.yaml", out, recipes.WithRegistry("127.0.0.1:5000"))
	require.NoError(t, err, string(out))
}
