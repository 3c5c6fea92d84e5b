package recipes

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The examples in docs/recipes.md parse.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/recipes.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	errBlock := regexp.MustCompile("(?s)```\n(my-recipe.yaml:.*?)```").FindStringSubmatch(string(doc))
	require.NotNil(t, errBlock, "the example errors")
	require.Len(t, blocks, 3)

	recipe := strings.ReplaceAll(blocks[0][1], "sha256: <64 hex>", "sha256: "+strings.Repeat("0", 64))
	dir := fstest.MapFS{"patches/0001-example.patch": {Data: []byte("diff\n")}}
	r, err := Parse("recipes.md", []byte(recipe), WithDir(dir))
	require.NoError(t, err)
	assert.Equal(t, "istio@1.24.2", r.ID())
	assert.Len(t, r.Patches(), 1)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, r.Spec.PlatformList())
	require.Len(t, r.Spec.Packages, 2)
	assert.Equal(t, "istio/istioctl-versions", r.Spec.Packages[1].CollectionRepository())

	// The example errors are what validation says of such a recipe.
	bad := strings.NewReplacer(
		"to: /opt/cni/bin/istio-cni ", "to: /opt/../../etc/cron.d/x ",
		"version: ${VERSION}-1 ", "version: ${VERSION}_1 ",
		"      - out/linux_amd64/istio-cni\n", "",
	).Replace(recipe)
	_, err = Parse("my-recipe.yaml", []byte(bad), WithDir(dir))
	require.Error(t, err)
	for _, line := range strings.Split(strings.TrimSpace(errBlock[1]), "\n") {
		assert.Contains(t, err.Error(), line)
	}

	b, err := ParseBase("recipes.md", []byte(blocks[1][1]))
	require.NoError(t, err)
	assert.Equal(t, "base/bookworm", b.Metadata.Name)
	assert.Len(t, b.Spec.Alternatives, 2)

	d, err := ParseBase("recipes.md", []byte(blocks[2][1]))
	require.NoError(t, err)
	require.NotNil(t, d.Spec.Distroless)
	assert.Equal(t, "iptables-legacy", d.Spec.Distroless.Links["/usr/sbin/iptables"])
}
