package recipes

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// packagesDoc is validDoc with the istioctl and istio-cni targets and
// packages; the cases below change it and name the line of the change.
var packagesDoc = strings.Replace(validDoc, "      - out/linux_amd64/pilot-agent\n",
	"      - out/linux_amd64/pilot-agent\n      - out/linux_amd64/istioctl\n      - out/linux_amd64/istio-cni\n", 1) + `  packages:
    - name: istio-cni
      type: istio-cni
      repository: istio/istio-cni
      version: ${VERSION}-1
      maintainer: "Sail Maker <sailmaker@example.org>"
      files:
        - from: build:out/linux_amd64/istio-cni
          to: /opt/cni/bin/istio-cni
        - from: source:LICENSE
          to: /usr/share/doc/istio-cni/LICENSE
          mode: "0644"
    - name: istioctl-versions
      type: istioctl
      repository: istio/istioctl
      maintainer: "Sail Maker <sailmaker@example.org>"
      files:
        - from: build:out/linux_amd64/istioctl
`

func TestPackagesParse(t *testing.T) {
	r, err := Parse("my.yaml", []byte(packagesDoc))
	require.NoError(t, err)
	require.Len(t, r.Spec.Packages, 2)
	cni, ctl := r.Spec.Packages[0], r.Spec.Packages[1]
	assert.Equal(t, "1.24.2-1", cni.Version)
	assert.Equal(t, "amd64", r.PackageArchitecture(cni))
	assert.Equal(t, "istio/istioctl-versions", ctl.CollectionRepository())
	assert.Equal(t, "/usr/bin/istioctl-1242", IstioctlPath(r.BuildVersion()))
	assert.Equal(t, "1.24.2-1", PackageTag("1.24.2-1"))
	assert.Equal(t, "1.24.2_2.2047006", PackageTag("1.24.2+2.2047006"))
	assert.Equal(t, "1_1.0_beta1", PackageTag("1:1.0~beta1"))
	file, line := r.Position("spec.packages[0].files[0].to")
	assert.Equal(t, "my.yaml", file)
	assert.Equal(t, 56, line)

	// A recipe without packages keeps its digest: the field is left out.
	plain, err := Parse("my.yaml", []byte(validDoc))
	require.NoError(t, err)
	assert.NotContains(t, string(mustJSON(t, plain)), "packages")
	assert.NotEqual(t, plain.Digest(), r.Digest())
}

// Bad package entries are refused with the file, the line and the field,
// before anything is built.
func TestPackageValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string // replaced once in packagesDoc
		line     int
		field    string
		msg      string
	}{
		{"to outside the root", "to: /opt/cni/bin/istio-cni", "to: /opt/../../etc/cron.d/x", 56, "spec.packages[0].files[0].to", "must stay inside the package root"},
		{"to relative", "to: /usr/share/doc/istio-cni/LICENSE", "to: usr/share/doc/istio-cni/LICENSE", 58, "spec.packages[0].files[1].to", "not absolute"},
		{"to duplicate", "to: /usr/share/doc/istio-cni/LICENSE", "to: /opt/cni/bin/istio-cni", 58, "spec.packages[0].files[1].to", "already the path of files[0]"},
		{"to below a file", "to: /usr/share/doc/istio-cni/LICENSE", "to: /opt/cni/bin/istio-cni/LICENSE", 58, "spec.packages[0].files[1].to", "which is a file, not a directory"},
		{"version dpkg refuses", "version: ${VERSION}-1", "version: ${VERSION}_1", 52, "spec.packages[0].version", "is not allowed in the upstream version"},
		{"version not a digit first", "version: ${VERSION}-1", "version: v${VERSION}-1", 52, "spec.packages[0].version", "must start with a digit"},
		{"version empty revision", "version: ${VERSION}-1", "version: ${VERSION}-", 52, "spec.packages[0].version", "the Debian revision after the last '-' is empty"},
		{"version missing", "      version: ${VERSION}-1\n", "", 49, "spec.packages[0].version", "required"},
		{"missing build output", "      - out/linux_amd64/istio-cni\n", "", 54, "spec.packages[0].files[0].from", "is not one of spec.make.targets"},
		{"from input", "from: source:LICENSE", "from: input:envoy", 57, "spec.packages[0].files[1].from", "takes files from the build"},
		{"from dotdot", "from: source:LICENSE", "from: source:../../etc/shadow", 57, "spec.packages[0].files[1].from", `must not contain ".."`},
		{"setuid", `mode: "0644"`, `mode: "4755"`, 59, "spec.packages[0].files[1].mode", "only permission bits"},
		{"no plugin", "to: /opt/cni/bin/istio-cni", "to: /usr/bin/istio-cni", 54, "spec.packages[0].files", "has the plugin at /opt/cni/bin/istio-cni"},
		{"name", "- name: istio-cni", "- name: Istio_CNI", 49, "spec.packages[0].name", "package name"},
		{"type", "type: istio-cni", "type: rpm", 50, "spec.packages[0].type", "unknown type"},
		{"repository of an image", "repository: istio/istio-cni", "repository: istio/pilot", 51, "spec.packages[0].repository", "also the repository of spec.images[0]"},
		{"istioctl repository named like the package", "repository: istio/istioctl\n", "repository: istio/istioctl-versions\n", 62, "spec.packages[1].repository", "would hold both"},
		{"maintainer", `maintainer: "Sail Maker <sailmaker@example.org>"`, "maintainer: sailmaker", 53, "spec.packages[0].maintainer", "Full Name <email@address>"},
		{"architecture", "      version: ${VERSION}-1\n", "      version: ${VERSION}-1\n      architecture: all\n", 53, "spec.packages[0].architecture", "not a Debian architecture"},
		{"istioctl version", "      repository: istio/istioctl\n", "      repository: istio/istioctl\n      version: 1.0-1\n", 63, "spec.packages[1].version", "derived from the releases it holds"},
		{"istioctl path", "        - from: build:out/linux_amd64/istioctl\n", "        - from: build:out/linux_amd64/istioctl\n          to: /usr/bin/istioctl\n", 66, "spec.packages[1].files[0].to", "/usr/bin/istioctl-1242"},
		{"release not a version", "      VERSION: 1.24.2\n", "      VERSION: 1.24-dev\n", 16, "spec.make.variables.VERSION", "the packages need the Istio release"},
		{"istioctl two files", "        - from: build:out/linux_amd64/istioctl\n", "        - from: build:out/linux_amd64/istioctl\n        - from: build:out/linux_amd64/istio-cni\n", 64, "spec.packages[1].files", "exactly one file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, packagesDoc, tc.old)
			doc := strings.Replace(packagesDoc, tc.old, tc.new, 1)
			_, err := Parse("my.yaml", []byte(doc))
			require.Error(t, err)
			var errs ValidationErrors
			require.True(t, errors.As(err, &errs), "%T is not ValidationErrors", err)
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					assert.Equal(t, "my.yaml", e.File)
					assert.Equal(t, tc.line, e.Line, "line of %v", e)
					return
				}
			}
			t.Errorf("no error for field %q containing %q; got:\n%v", tc.field, tc.msg, err)
		})
	}
}

func mustJSON(t *testing.T, r *Recipe) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	return b
}
