package recipes

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validDoc is a valid recipe; the cases below change it and name the line
// of the change.
const validDoc = `apiVersion: sailmaker.dev/v1alpha1
kind: Recipe
metadata:
  name: istio
  version: 1.24.2
spec:
  source:
    git: https://github.com/istio/istio.git
    tag: 1.24.2
    commit: 7754674f65d38523e49b692cbb95a5bb1e2a93b8
  toolchain:
    builder: ${REGISTRY}/builder/go1.23.4:1
    go: 1.23.4
  make:
    variables:
      VERSION: 1.24.2
    targets:
      - out/linux_amd64/pilot-discovery
      - out/linux_amd64/pilot-agent
  inputs:
    envoy:
      url: https://artifacts.example/envoy-alpha-${PROXY_REPO_SHA}.tar.gz
      proxySHA: 1ed7d44031746a2ad74707202464b4bfdcb38e82
      sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
      binary: usr/local/bin/envoy
  images:
    - name: pilot
      repository: istio/pilot
      tag: ${VERSION}
      base: ${REGISTRY}/base/bookworm:1
      files:
        - from: build:out/linux_amd64/pilot-discovery
          to: /usr/local/bin/pilot-discovery
      user: "1337:1337"
      entrypoint: [/usr/local/bin/pilot-discovery]
    - name: proxyv2
      repository: istio/proxyv2
      tag: ${VERSION}
      base: ${REGISTRY}/base/bookworm:1
      files:
        - from: input:envoy
          to: /usr/local/bin/envoy
          mode: "0755"
      env:
        ISTIO_META_ISTIO_PROXY_SHA: ${PROXY_REPO_SHA}
`

func TestValidDoc(t *testing.T) {
	r, err := Parse("my.yaml", []byte(validDoc))
	require.NoError(t, err)
	assert.Equal(t, "istio@1.24.2", r.ID())
	assert.Equal(t, "127.0.0.1:5000/builder/go1.23.4:1", r.Spec.Toolchain.Builder)
	assert.Equal(t, "1.24.2", r.Spec.Images[0].Tag)
	assert.Equal(t, "https://artifacts.example/envoy-alpha-1ed7d44031746a2ad74707202464b4bfdcb38e82.tar.gz", r.Spec.Inputs.Envoy.URL)
	assert.Equal(t, "1ed7d44031746a2ad74707202464b4bfdcb38e82", r.Spec.Images[1].Env["ISTIO_META_ISTIO_PROXY_SHA"])
	assert.Empty(t, r.Warnings(), "the proxyv2 image takes no build: file that is not a target")
	file, line := r.Position("spec.inputs.envoy.sha256")
	assert.Equal(t, "my.yaml", file)
	assert.Equal(t, 24, line)
}

func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string // replaced once in validDoc
		line     int
		field    string
		msg      string
	}{
		{"apiVersion", "apiVersion: sailmaker.dev/v1alpha1", "apiVersion: v1", 1, "apiVersion", "must be sailmaker.dev/v1alpha1"},
		{"kind", "kind: Recipe", "kind: BaseImage", 2, "kind", "must be Recipe"},
		{"missing kind", "kind: Recipe\n", "", 1, "kind", "required"},
		{"missing name", "  name: istio\n", "", 3, "metadata.name", "required"},
		{"bad name", "name: istio\n", "name: Istio\n", 4, "metadata.name", "not a valid name"},
		{"missing version", "  version: 1.24.2\n", "", 3, "metadata.version", "required"},
		{"bad version", "version: 1.24.2", "version: 1.24.2+x", 5, "metadata.version", "image tag"},
		{"variable in version", "version: 1.24.2", "version: ${TAG}", 5, "metadata.version", "variables are not expanded"},
		{"unknown metadata field", "metadata:\n", "metadata:\n  bogus: 1\n", 4, "metadata.bogus", "unknown field"},
		{"unknown top-level field", "spec:\n", "status: {}\nspec:\n", 6, "status", "unknown field"},
		{"duplicate field", "  name: istio\n", "  name: istio\n  name: other\n", 5, "metadata.name", "duplicate field"},
		{"mapping expected", "  source:\n", "  source: []\n  sourcex:\n", 7, "spec.source", "must be a mapping, not a list"},
		{"list expected", "targets:\n", "targets: x\n    bogus:\n", 17, "spec.make.targets", "must be a list"},
		{"git scheme", "git: https://github.com/istio/istio.git", "git: ftp://github.com/istio/istio.git", 8, "spec.source.git", "must be an http://, https://, file:// or ssh:// URL"},
		{"git option injection", "git: https://github.com/istio/istio.git", "git: ssh://-oProxyCommand=x/y", 8, "spec.source.git", "no valid host"},
		{"git missing", "    git: https://github.com/istio/istio.git\n", "", 7, "spec.source.git", "required"},
		{"tag dotdot", "tag: 1.24.2", "tag: 1..24", 9, "spec.source.tag", `must not contain ".."`},
		{"tag slash", "tag: 1.24.2", "tag: release/1.24", 9, "spec.source.tag", `must not contain "/"`},
		{"tag dash", "tag: 1.24.2", "tag: -1.24.2", 9, "spec.source.tag", `must not start with "-"`},
		{"tag space", "tag: 1.24.2", `tag: "1.24 2"`, 9, "spec.source.tag", "whitespace"},
		{"tag lock", "tag: 1.24.2", "tag: 1.24.2.lock", 9, "spec.source.tag", ".lock"},
		{"tag caret", "tag: 1.24.2", "tag: 1.24^2", 9, "spec.source.tag", "must not contain any of"},
		{"tag at-brace", "tag: 1.24.2", "tag: 1@{2}", 9, "spec.source.tag", `"@{"`},
		{"commit short", "commit: 7754674f65d38523e49b692cbb95a5bb1e2a93b8", "commit: 7754674f", 10, "spec.source.commit", "40 lowercase hex"},
		{"commit upper", "commit: 7754674f65d38523e49b692cbb95a5bb1e2a93b8", "commit: 7754674F65D38523E49B692CBB95A5BB1E2A93B8", 10, "spec.source.commit", "40 lowercase hex"},
		{"patch absolute", "  toolchain:\n", "    patches: [/etc/passwd]\n  toolchain:\n", 11, "spec.source.patches[0]", "must be a relative path"},
		{"patch dotdot", "  toolchain:\n", "    patches:\n      - ok.patch\n      - ../x.patch\n  toolchain:\n", 13, "spec.source.patches[1]", `must not contain ".."`},
		{"patch without dir", "  toolchain:\n", "    patches: [0001.patch]\n  toolchain:\n", 11, "spec.source.patches[0]", "not read from a directory"},
		{"builder docker hub", "builder: ${REGISTRY}/builder/go1.23.4:1", "builder: docker.io/library/golang:1.23", 12, "spec.toolchain.builder", "Docker Hub is never used"},
		{"builder unqualified", "builder: ${REGISTRY}/builder/go1.23.4:1", "builder: golang:1.23", 12, "spec.toolchain.builder", "not fully qualified"},
		{"builder not allowed", "builder: ${REGISTRY}/builder/go1.23.4:1", "builder: quay.io/istio/builder:1", 12, "spec.toolchain.builder", "registry is not allowed"},
		{"builder no tag", "builder: ${REGISTRY}/builder/go1.23.4:1", "builder: ${REGISTRY}/builder/go1.23.4", 12, "spec.toolchain.builder", "neither a tag nor a digest"},
		{"go version", "go: 1.23.4", "go: latest", 13, "spec.toolchain.go", "not a Go version"},
		{"go missing", "    go: 1.23.4\n", "", 11, "spec.toolchain.go", "required"},
		{"make variable name", "      VERSION: 1.24.2\n", "      VERSION: 1.24.2\n      BAD-NAME: x\n", 17, "spec.make.variables.BAD-NAME", "not a make variable name"},
		{"targets empty", "targets:\n      - out/linux_amd64/pilot-discovery\n      - out/linux_amd64/pilot-agent\n", "targets: []\n", 17, "spec.make.targets", "at least one target"},
		{"target dotdot", "- out/linux_amd64/pilot-agent", "- ../pilot-agent", 19, "spec.make.targets[1]", `must not contain ".."`},
		{"target absolute", "- out/linux_amd64/pilot-agent", "- /out/pilot-agent", 19, "spec.make.targets[1]", "must be a relative path"},
		{"envoy url scheme", "url: https://artifacts.example/envoy-alpha-${PROXY_REPO_SHA}.tar.gz", "url: gs://bucket/envoy.tar.gz", 22, "spec.inputs.envoy.url", "must be an http://, https:// or file:// URL"},
		{"envoy url missing", "      url: https://artifacts.example/envoy-alpha-${PROXY_REPO_SHA}.tar.gz\n", "", 21, "spec.inputs.envoy.url", "required"},
		{"proxySHA", "proxySHA: 1ed7d44031746a2ad74707202464b4bfdcb38e82", "proxySHA: 1ed7d440", 23, "spec.inputs.envoy.proxySHA", "40 lowercase hex"},
		{"proxySHA variable", "proxySHA: 1ed7d44031746a2ad74707202464b4bfdcb38e82", "proxySHA: ${COMMIT}", 23, "spec.inputs.envoy.proxySHA", "variables are not expanded"},
		{"sha256 upper", "sha256: 0123456789abcdef", "sha256: 0123456789ABCDEF", 24, "spec.inputs.envoy.sha256", "must be 64 lowercase hex digits"},
		{"sha256 short", "sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "sha256: 0123", 24, "spec.inputs.envoy.sha256", "must be 64 lowercase hex digits"},
		{"sha256 missing", "      sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "", 21, "spec.inputs.envoy.sha256", "unconfirmed: true"},
		{"unconfirmed not bool", "      binary: usr/local/bin/envoy\n", "      binary: usr/local/bin/envoy\n      unconfirmed: maybe\n", 26, "spec.inputs.envoy.unconfirmed", "must be true or false"},
		{"binary absolute", "binary: usr/local/bin/envoy", "binary: /usr/local/bin/envoy", 25, "spec.inputs.envoy.binary", "must be a relative path"},
		{"no images", "  images:\n", "  images: []\n  imagesx:\n", 26, "spec.images", "at least one image"},
		{"duplicate image", "- name: proxyv2", "- name: pilot", 36, "spec.images[1].name", `already named "pilot"`},
		{"image name", "- name: proxyv2", "- name: Proxy_V2!", 36, "spec.images[1].name", "not a valid name"},
		{"repository upper", "repository: istio/pilot", "repository: istio/Pilot", 28, "spec.images[0].repository", "not a valid repository path"},
		{"repository with registry", "repository: istio/pilot", "repository: docker.io/istio/pilot", 28, "spec.images[0].repository", "names a registry"},
		{"repository missing", "      repository: istio/pilot\n", "", 27, "spec.images[0].repository", "required"},
		{"tag after expansion", "tag: ${VERSION}", "tag: ${VERSION}+build", 29, "spec.images[0].tag", "not a valid image tag"},
		{"unknown variable", "tag: ${VERSION}", "tag: ${NOPE}", 29, "spec.images[0].tag", "unknown variable ${NOPE}"},
		{"unterminated variable", "tag: ${VERSION}", "tag: ${VERSION", 29, "spec.images[0].tag", "unterminated"},
		{"base missing", "      base: ${REGISTRY}/base/bookworm:1\n", "", 27, "spec.images[0].base", "required"},
		{"base docker hub", "base: ${REGISTRY}/base/bookworm:1", "base: docker.io/library/debian:bookworm", 30, "spec.images[0].base", "Docker Hub is never used"},
		{"base index docker hub", "base: ${REGISTRY}/base/bookworm:1", "base: index.docker.io/library/debian:bookworm", 30, "spec.images[0].base", "Docker Hub is never used"},
		{"base unqualified", "base: ${REGISTRY}/base/bookworm:1", "base: library/alpine:3", 30, "spec.images[0].base", "not fully qualified"},
		{"files empty", "files:\n        - from: build:out/linux_amd64/pilot-discovery\n          to: /usr/local/bin/pilot-discovery\n", "files: []\n", 31, "spec.images[0].files", "at least one file"},
		{"files not a list", "files:\n        - from: build:out/linux_amd64/pilot-discovery\n          to: /usr/local/bin/pilot-discovery\n", "files: yes\n", 31, "spec.images[0].files", "must be a list"},
		{"from prefix", "from: build:out/linux_amd64/pilot-discovery", "from: out/linux_amd64/pilot-discovery", 32, "spec.images[0].files[0].from", "must start with build:, source: or input:"},
		{"from dotdot", "from: build:out/linux_amd64/pilot-discovery", "from: source:../../etc/shadow", 32, "spec.images[0].files[0].from", `must not contain ".."`},
		{"from unknown input", "from: input:envoy", "from: input:ztunnel", 41, "spec.images[1].files[0].from", "unknown input"},
		{"input without envoy", "  inputs:\n    envoy:\n      url: https://artifacts.example/envoy-alpha-${PROXY_REPO_SHA}.tar.gz\n      proxySHA: 1ed7d44031746a2ad74707202464b4bfdcb38e82\n      sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n      binary: usr/local/bin/envoy\n", "", 35, "spec.images[1].files[0].from", "input:envoy needs spec.inputs.envoy"},
		{"PROXY_REPO_SHA without envoy", "  inputs:\n    envoy:\n      url: https://artifacts.example/envoy-alpha-${PROXY_REPO_SHA}.tar.gz\n      proxySHA: 1ed7d44031746a2ad74707202464b4bfdcb38e82\n      sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n      binary: usr/local/bin/envoy\n", "", 39, "spec.images[1].env.ISTIO_META_ISTIO_PROXY_SHA", "${PROXY_REPO_SHA} has no value"},
		{"to relative", "to: /usr/local/bin/envoy", "to: usr/local/bin/envoy", 42, "spec.images[1].files[0].to", "clean absolute path"},
		{"to unclean", "to: /usr/local/bin/envoy", "to: /usr/local/../bin/envoy", 42, "spec.images[1].files[0].to", "clean absolute path"},
		{"to duplicate", "          mode: \"0755\"\n", "          mode: \"0755\"\n        - from: build:out/linux_amd64/pilot-agent\n          to: /usr/local/bin/envoy\n", 45, "spec.images[1].files[1].to", "already goes to"},
		{"mode", `mode: "0755"`, `mode: "0999"`, 43, "spec.images[1].files[0].mode", "octal mode"},
		{"mode word", `mode: "0755"`, `mode: rwx`, 43, "spec.images[1].files[0].mode", "octal mode"},
		{"mode decimal number", `mode: "0755"`, `mode: 420`, 43, "spec.images[1].files[0].mode", `is a number; write the mode as an octal string such as "0644"`},
		{"to with NUL", "to: /usr/local/bin/envoy", `to: "/usr/local/bin/envoy\0.so"`, 42, "spec.images[1].files[0].to", "control characters"},
		{"entrypoint with NUL", "entrypoint: [/usr/local/bin/pilot-discovery]", `entrypoint: [/usr/local/bin/pilot-discovery, "a\0b"]`, 35, "spec.images[0].entrypoint", "must not contain NUL"},
		{"make value too long", "      VERSION: 1.24.2\n", "      VERSION: 1.24.2\n      LONG: " + strings.Repeat("x", 5000) + "\n", 17, "spec.make.variables.LONG", "at most 4096"},
		{"entrypoint relative", "entrypoint: [/usr/local/bin/pilot-discovery]", "entrypoint: [pilot-discovery]", 35, "spec.images[0].entrypoint[0]", "absolute path"},
		{"user", `user: "1337:1337"`, `user: "a b"`, 34, "spec.images[0].user", "user or user:group"},
		{"workdir", `user: "1337:1337"`, "user: \"1337:1337\"\n      workdir: tmp", 35, "spec.images[0].workdir", "absolute path"},
		{"env name", "ISTIO_META_ISTIO_PROXY_SHA: ${PROXY_REPO_SHA}", "ISTIO META: x", 45, `spec.images[1].env["ISTIO META"]`, "not an environment variable name"},
		{"unknown image field", `user: "1337:1337"`, "user: \"1337:1337\"\n      ports: [8080]", 35, "spec.images[0].ports", "unknown field"},
		{"merge key", "  toolchain:\n", "  toolchain:\n    <<: {go: 1.23.4}\n", 12, "spec.toolchain.<<", "merge keys"},
		{"syntax", "  name: istio\n", "  name: istio: x\n", 4, "", "invalid YAML"},
		{"two documents", "        ISTIO_META_ISTIO_PROXY_SHA: ${PROXY_REPO_SHA}\n", "        ISTIO_META_ISTIO_PROXY_SHA: ${PROXY_REPO_SHA}\n---\nkind: Recipe\n", 46, "", "only one document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, validDoc, tc.old)
			doc := strings.Replace(validDoc, tc.old, tc.new, 1)
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

// Thousands of make variables would make the compile step's shell argument
// too long for Linux: refused when the recipe is read, not after compiling.
func TestTooManyMakeVariables(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&b, "      V%d: value-%d\n", i, i)
	}
	doc := strings.Replace(validDoc, "      VERSION: 1.24.2\n", "      VERSION: 1.24.2\n"+b.String(), 1)
	_, err := Parse("my.yaml", []byte(doc))
	var errs ValidationErrors
	require.ErrorAs(t, err, &errs)
	assert.Contains(t, err.Error(), "my.yaml:15: spec.make.variables: 3001 variables: at most 200")

	// Fewer, longer ones: the command line as a whole is too long.
	b.Reset()
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "      V%d: %s\n", i, strings.Repeat("v", 4000))
	}
	doc = strings.Replace(validDoc, "      VERSION: 1.24.2\n", "      VERSION: 1.24.2\n"+b.String(), 1)
	_, err = Parse("my.yaml", []byte(doc))
	require.ErrorAs(t, err, &errs)
	assert.Contains(t, err.Error(), "spec.make: the make command line would be about 400")

	// A JSON recipe's mode given as a number is refused, naming the path.
	j := `{"apiVersion":"sailmaker.dev/v1alpha1","kind":"Recipe","metadata":{"name":"x","version":"1"},"spec":{"images":[{"files":[{"from":"build:a","to":"/a","mode":420}]}]}}`
	_, err = Parse("inline", []byte(j))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `spec.images[0].files[0].mode: 420 is a number; write the mode as an octal string such as "0644"`)
}

func TestValidationErrorsAreAllCollected(t *testing.T) {
	doc := strings.NewReplacer(
		"commit: 7754674f65d38523e49b692cbb95a5bb1e2a93b8", "commit: nope",
		"sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "sha256: NOPE",
		"base: ${REGISTRY}/base/bookworm:1", "base: golang:1.23",
	).Replace(validDoc)
	_, err := Parse("my.yaml", []byte(doc))
	var errs ValidationErrors
	require.ErrorAs(t, err, &errs)
	assert.Len(t, errs, 4, "%v", err) // commit, sha256 and both bases
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 4)
	assert.Equal(t, "my.yaml:10: spec.source.commit: must be 40 lowercase hex digits", lines[0])
	assert.Equal(t, "my.yaml:24: spec.inputs.envoy.sha256: must be 64 lowercase hex digits", lines[1])
	assert.True(t, strings.HasPrefix(lines[2], "my.yaml:30: spec.images[0].base: "), lines[2])
	assert.True(t, strings.HasPrefix(lines[3], "my.yaml:39: spec.images[1].base: "), lines[3])
}

func TestValidVariants(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		opts           []Option
	}{
		{"ssh URL", "git: https://github.com/istio/istio.git", "git: ssh://git@github.com/istio/istio.git", nil},
		{"scp-like URL", "git: https://github.com/istio/istio.git", "git: git@github.com:istio/istio.git", nil},
		{"file URL", "git: https://github.com/istio/istio.git", "git: file:///srv/git/istio.git", nil},
		{"http URL", "git: https://github.com/istio/istio.git", "git: http://git.internal/istio.git", nil},
		{"base by digest", "base: ${REGISTRY}/base/bookworm:1", "base: ${REGISTRY}/base/bookworm@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", nil},
		{"allowed registry", "base: ${REGISTRY}/base/bookworm:1", "base: mirror.internal/base/bookworm:1", []Option{WithAllowedRegistries([]string{"mirror.internal"})}},
		{"localhost registry", "base: ${REGISTRY}/base/bookworm:1", "base: localhost/base/bookworm:1", []Option{WithAllowedRegistries([]string{"localhost"})}},
		{"configured registry", "base: ${REGISTRY}/base/bookworm:1", "base: registry.internal:5000/base/bookworm:1", []Option{WithRegistry("registry.internal:5000")}},
		{"unconfirmed without sha256", "      sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "      unconfirmed: true\n", nil},
		{"json-ish flow", "  toolchain:\n    builder: ${REGISTRY}/builder/go1.23.4:1\n    go: 1.23.4\n", "  \"toolchain\": {\"builder\": \"${REGISTRY}/builder/go1.23.4:1\", \"go\": \"1.23.4\"}\n", nil},
		{"numeric scalars", `mode: "0755"`, "mode: 0755", nil},
		{"dollar without brace", `user: "1337:1337"`, "user: \"1337:1337\"\n      cmd: [\"$HOME\"]", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, validDoc, tc.old)
			_, err := Parse("my.yaml", []byte(strings.Replace(validDoc, tc.old, tc.new, 1)), tc.opts...)
			assert.NoError(t, err)
		})
	}
}

func TestUnconfirmedWarning(t *testing.T) {
	doc := strings.Replace(validDoc,
		"      sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
		"      unconfirmed: true\n", 1)
	r, err := Parse("my.yaml", []byte(doc))
	require.NoError(t, err)
	require.Len(t, r.Warnings(), 1)
	assert.Equal(t, "my.yaml:24: spec.inputs.envoy.unconfirmed: the Envoy tarball's sha256 has not been confirmed against the internal mirror; building needs an explicit override", r.Warnings()[0])

	before := r.Digest()
	sum := strings.Repeat("ab", 32)
	require.NoError(t, r.ConfirmEnvoySHA256(sum))
	assert.Empty(t, r.Warnings())
	assert.Equal(t, sum, r.Spec.Inputs.Envoy.SHA256)
	assert.False(t, r.Spec.Inputs.Envoy.Unconfirmed)
	assert.NotEqual(t, before, r.Digest())
	require.NoError(t, r.ConfirmEnvoySHA256(sum), "the same value again")
	assert.Error(t, r.ConfirmEnvoySHA256(strings.Repeat("cd", 32)), "a confirmed sha256 is not overridden")
	assert.Error(t, r.ConfirmEnvoySHA256("nope"))
}

func TestOtherWarnings(t *testing.T) {
	doc := strings.NewReplacer(
		"      VERSION: 1.24.2\n", "      TARGET_ARCH: amd64\n",
		"from: build:out/linux_amd64/pilot-discovery", "from: build:out/linux_amd64/other",
		"- from: input:envoy", "- from: build:out/linux_amd64/pilot-agent",
	).Replace(validDoc)
	r, err := Parse("my.yaml", []byte(doc))
	require.NoError(t, err)
	w := strings.Join(r.Warnings(), "\n")
	assert.Contains(t, w, "my.yaml:32: spec.images[0].files[0].from: out/linux_amd64/other is not one of spec.make.targets")
	assert.Contains(t, w, "my.yaml:21: spec.inputs.envoy: no image uses input:envoy")
	assert.Contains(t, w, "my.yaml:15: spec.make.variables: VERSION is not set")
}

func TestParseBase(t *testing.T) {
	b, err := LoadBase("testdata/base.yaml", WithRegistry("registry.internal"))
	require.NoError(t, err)
	assert.Equal(t, "registry.internal/base/test:2", b.Spec.Labels["org.opencontainers.image.source"])
	assert.Equal(t, "registry.internal/base/test:2", b.Ref("registry.internal"))
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, b.Digest())

	bookworm, err := embedded.ReadFile("bases/bookworm.yaml")
	require.NoError(t, err)
	valid := string(bookworm)
	for _, tc := range []struct {
		name, old, new string
		field, msg     string
	}{
		{"kind", "kind: BaseImage", "kind: Recipe", "kind", "must be BaseImage"},
		{"name", "name: base/bookworm", "name: Base/Bookworm", "metadata.name", "not a repository path"},
		{"version", `version: "2"`, `version: "1/2"`, "metadata.version", "image tag"},
		{"suite", "suite: bookworm", "suite: Bookworm!", "spec.suite", "not a Debian suite"},
		{"variant", "variant: minbase", "variant: tiny", "spec.variant", "unknown variant"},
		{"variant extract", "variant: minbase", "variant: extract", "spec.variant", "use it with spec.distroless"},
		{"packages", "  packages:\n    - ca-certificates\n", "  packages: []\n  xpackages:\n    - ca-certificates\n", "spec.packages", "at least one package"},
		{"package name", "    - curl\n", "    - 'rm -rf'\n", "spec.packages[1]", "not a Debian package name"},
		{"package twice", "    - curl\n", "    - sudo=1.9\n", "spec.packages[12]", "listed twice"},
		{"platform", "platforms: [linux/amd64, linux/arm64]", "platforms: [linux/amd64, linux/s390x]", "spec.platforms[1]", "unknown platform"},
		{"platform twice", "platforms: [linux/amd64, linux/arm64]", "platforms: [linux/arm64, linux/arm64]", "spec.platforms[1]", "listed twice"},
		{"go multi-platform", "  users:", "  go: {version: 1.23.4}\n  users:", "spec.platforms", "linux/amd64 only"},
		{"epoch", "sourceDateEpoch: 1734146883", "sourceDateEpoch: soon", "spec.sourceDateEpoch", "must be an integer"},
		{"epoch missing", "  sourceDateEpoch: 1734146883\n", "", "spec.sourceDateEpoch", "required"},
		{"alternative name", "{name: iptables, path", "{name: 'ip tables', path", "spec.alternatives[0].name", "not an alternative name"},
		{"alternative twice", "{name: ip6tables, path", "{name: iptables, path", "spec.alternatives[1].name", "set twice"},
		{"alternative path", "path: /usr/sbin/ip6tables-legacy}", "path: usr/sbin/ip6tables-legacy}", "spec.alternatives[1].path", "clean absolute path"},
		{"uid", "uid: 1337", "uid: 0", "spec.users[0].uid", "between 1 and 65533"},
		{"user name", "name: istio-proxy", "name: Istio Proxy", "spec.users[0].name", "not a user name"},
		{"home", "uid: 1337}", "uid: 1337, home: /home/../etc}", "spec.users[0].home", "clean absolute path"},
		{"sudoers", `- "istio-proxy ALL=NOPASSWD: ALL"`, `- ""`, "spec.sudoers[0]", "one non-empty line"},
		{"go", "  sudoers:", "  go: {version: tip}\n  sudoers:", "spec.go.version", "not a Go version"},
		{"user", "  env:", "  user: 'a b'\n  env:", "spec.user", "user or user:group"},
		{"workdir", "  env:", "  workdir: tmp\n  env:", "spec.workdir", "clean absolute path"},
		{"unknown", "  sudoers:", "  recommends: true\n  sudoers:", "spec.recommends", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, valid, tc.old)
			_, err := ParseBase("bookworm.yaml", []byte(strings.Replace(valid, tc.old, tc.new, 1)))
			var errs ValidationErrors
			require.ErrorAs(t, err, &errs)
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					assert.Positive(t, e.Line)
					return
				}
			}
			t.Errorf("no error for %q containing %q; got:\n%v", tc.field, tc.msg, err)
		})
	}
}

func TestParseDistrolessBase(t *testing.T) {
	data, err := embedded.ReadFile("bases/iptables.yaml")
	require.NoError(t, err)
	valid := string(data)
	b, err := ParseBase("iptables.yaml", data)
	require.NoError(t, err)
	require.NotNil(t, b.Spec.Distroless)
	assert.Equal(t, "iptables-legacy", b.Spec.Distroless.Links["/usr/sbin/iptables"])
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, b.Spec.PlatformList())

	for _, tc := range []struct {
		name, old, new string
		field, msg     string
	}{
		{"variant", "  suite: bookworm\n", "  suite: bookworm\n  variant: minbase\n", "spec.variant", "only extracts its packages"},
		{"no files", "    files:\n", "    files: []\n    xfiles:\n", "spec.distroless.files", "at least one file"},
		{"relative file", "      - /etc/protocols\n", "      - etc/protocols\n", "spec.distroless.files[12]", "clean absolute path"},
		{"bad pattern", "      - /etc/protocols\n", "      - /etc/[protocols\n", "spec.distroless.files[12]", "not a valid pattern"},
		{"root", "      - /etc/protocols\n", "      - /\n", "spec.distroless.files[12]", "not a selection"},
		{"file twice", "      - /etc/protocols\n", "      - /etc/services\n", "spec.distroless.files[13]", "listed twice"},
		{"link path", "      /usr/sbin/iptables: iptables-legacy", "      usr/sbin/iptables: iptables-legacy", `spec.distroless.links["usr/sbin/iptables"]`, "clean absolute path"},
		{"link target", "      /usr/sbin/iptables: iptables-legacy", "      /usr/sbin/iptables: ''", "spec.distroless.links[\"/usr/sbin/iptables\"]", "target is required"},
		{"dir mode", `/run: "0755"`, `/run: "rwx"`, `spec.distroless.dirs["/run"]`, "octal mode"},
		{"ca without package", "packages: [base-files, ca-certificates, iptables", "packages: [base-files, iptables", "spec.distroless.caCertificates", "needs ca-certificates"},
		{"sudoers", "  users:", "  sudoers: [\"a ALL=ALL\"]\n  users:", "spec.sudoers", "has no sudo"},
		{"alternatives", "  users:", "  alternatives: [{name: iptables, path: /usr/sbin/iptables-legacy}]\n  users:", "spec.alternatives", "spec.distroless.links"},
		{"go", "  users:", "  go: {version: 1.23.4}\n  users:", "spec.go", "not a distroless one"},
		{"unknown", "    caCertificates: true", "    caCertificates: true\n    shell: true", "spec.distroless.shell", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, valid, tc.old)
			_, err := ParseBase("iptables.yaml", []byte(strings.Replace(valid, tc.old, tc.new, 1)))
			var errs ValidationErrors
			require.ErrorAs(t, err, &errs)
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					assert.Positive(t, e.Line, "%v", e)
					return
				}
			}
			t.Errorf("no error for %q containing %q; got:\n%v", tc.field, tc.msg, err)
		})
	}
}

func TestValidationErrorFormat(t *testing.T) {
	assert.Equal(t, "my.yaml:14: spec.inputs.envoy.sha256: must be 64 lowercase hex digits",
		ValidationError{File: "my.yaml", Line: 14, Field: "spec.inputs.envoy.sha256", Msg: "must be 64 lowercase hex digits"}.Error())
	assert.Equal(t, "my.yaml: empty document", ValidationError{File: "my.yaml", Msg: "empty document"}.Error())
	assert.Equal(t, "spec.go: required", ValidationError{Field: "spec.go", Msg: "required"}.Error())
}

func TestParseDegenerate(t *testing.T) {
	for _, doc := range []string{"", "---\n", "[]", "42", "null", "{}", "a: &a [*a]"} {
		_, err := Parse("x.yaml", []byte(doc))
		assert.Error(t, err, "%q", doc)
	}
}

// A syntax error names the line of the fault, wherever it is: not the line
// where the enclosing block starts (yaml.v3 says line 1 for any fault in
// the top-level mapping).
func TestSyntaxErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		// at is the text of the faulty line in the new document.
		at string
	}{
		{"top-level key without a value", "spec:\n", "spec:\nbroken\n", "broken"},
		{"top-level key indented", "spec:\n", " spec:\n", " spec:"},
		{"nested key dedented", "    go: 1.23.4\n", "   go: 1.23.4\n", "   go: 1.23.4"},
		{"deep key dedented", "      binary: usr/local/bin/envoy\n", "     binary: usr/local/bin/envoy\n", "     binary:"},
		{"a tab", "    tag: 1.24.2\n", "\ttag: 1.24.2\n", "\ttag: 1.24.2"},
		{"a value that is a mapping", "  version: 1.24.2\n", "  version: 1.24.2: x\n", "  version: 1.24.2: x"},
		{"a key after the last one", "        ISTIO_META_ISTIO_PROXY_SHA: ${PROXY_REPO_SHA}\n", "        ISTIO_META_ISTIO_PROXY_SHA: ${PROXY_REPO_SHA}\nstatus\n", "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, validDoc, tc.old)
			doc := strings.Replace(validDoc, tc.old, tc.new, 1)
			want := 0
			for i, l := range strings.Split(doc, "\n") {
				if strings.HasPrefix(l, tc.at) {
					want = i + 1
					break
				}
			}
			require.NotZero(t, want)
			_, err := Parse("my.yaml", []byte(doc))
			var errs ValidationErrors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1, "%v", err)
			assert.Equal(t, want, errs[0].Line, "%v", errs[0])
			assert.True(t, strings.HasPrefix(errs[0].Error(), fmt.Sprintf("my.yaml:%d: invalid YAML: ", want)), errs[0].Error())
		})
	}

	// JSON too: the line of the missing comma, not of the opening brace.
	doc := "{\n  \"apiVersion\": \"sailmaker.dev/v1alpha1\",\n  \"kind\": \"Recipe\"\n  \"metadata\": {}\n}\n"
	_, err := Parse("r.json", []byte(doc))
	var errs ValidationErrors
	require.ErrorAs(t, err, &errs)
	assert.Equal(t, 4, errs[0].Line, "%v", err)
}
