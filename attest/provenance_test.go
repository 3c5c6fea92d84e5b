package attest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
)

const (
	imageHex   = "1111111111111111111111111111111111111111111111111111111111111111"
	builderHex = "2222222222222222222222222222222222222222222222222222222222222222"
	baseHex    = "3333333333333333333333333333333333333333333333333333333333333333"
	commit     = "0123456789abcdef0123456789abcdef01234567"
)

func provenanceParams(t *testing.T) attest.ProvenanceParams {
	ref, err := name.NewDigest("registry.internal:5000/fixture/pilot@sha256:" + imageHex)
	require.NoError(t, err)
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	return attest.ProvenanceParams{
		Image: ref,
		External: attest.ExternalParameters{
			Recipe:  attest.RecipeParam{ID: "fixture@1.0.0", Digest: "sha256:abcd"},
			Source:  attest.SourceParam{Git: "https://git.internal/istio.git", Tag: "1.0.0", Commit: commit},
			Patches: []attest.PatchParam{{Path: "patches/0001-fix.patch", SHA256: "5555"}},
			Make:    attest.MakeParam{Targets: []string{"out/linux_amd64/pilot-discovery"}, Variables: map[string]string{"VERSION": "1.0.0"}},
			Envoy:   &attest.EnvoyParam{URL: "https://artifacts.internal/envoy.tar.gz", SHA256: "6666", ProxySHA: "7777", Override: true},
			Toolchain: attest.ToolchainParam{
				Go: "1.23.4", Builder: "registry.internal:5000/builder/go1.23.4:1", BuilderDigest: "sha256:" + builderHex,
			},
			Base:  attest.BaseParam{Name: "registry.internal:5000/base/bookworm:1", Digest: "sha256:" + baseHex},
			Image: attest.ImageParam{Name: "pilot", Repository: "fixture/pilot", Tag: "1.0.0"},
		},
		Internal: attest.InternalParameters{
			BuildKitVersion: "v0.33.1", SailmakerVersion: "(devel)", InputsKey: "sha256:8888",
			Trigger: api.Trigger{Actor: "alice", Kind: "webhook", DeliveryID: "d-42", BuildID: "b-7", Time: started.Add(-time.Minute)},
		},
		InvocationID: "b-7",
		StartedOn:    started,
		FinishedOn:   started.Add(3 * time.Minute),
	}
}

// The statement, read back as plain JSON, has the fields the contract
// names, under the contract's keys.
func TestProvenanceDocument(t *testing.T) {
	p := provenanceParams(t)
	st, err := attest.NewProvenance(p)
	require.NoError(t, err)
	raw, err := json.Marshal(st)
	require.NoError(t, err)

	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	get := func(path string) any {
		var cur any = doc
		for _, k := range strings.Split(path, ".") {
			m, ok := cur.(map[string]any)
			require.True(t, ok, "%s: %s is not an object", path, k)
			cur, ok = m[k]
			require.True(t, ok, "%s: no key %s in %v", path, k, m)
		}
		return cur
	}
	assert.Equal(t, "https://in-toto.io/Statement/v1", get("_type"))
	assert.Equal(t, "https://slsa.dev/provenance/v1", get("predicateType"))
	subj := get("subject").([]any)[0].(map[string]any)
	assert.Equal(t, "registry.internal:5000/fixture/pilot", subj["name"])
	assert.Equal(t, map[string]any{"sha256": imageHex}, subj["digest"])
	assert.Equal(t, "https://sailmaker.dev/build/v1", get("predicate.buildDefinition.buildType"))

	ext := "predicate.buildDefinition.externalParameters."
	assert.Equal(t, "fixture@1.0.0", get(ext+"recipe.id"))
	assert.Equal(t, "sha256:abcd", get(ext+"recipe.digest"))
	assert.Equal(t, "https://git.internal/istio.git", get(ext+"source.git"))
	assert.Equal(t, "1.0.0", get(ext+"source.tag"))
	assert.Equal(t, commit, get(ext+"source.commit"))
	assert.Equal(t, []any{map[string]any{"path": "patches/0001-fix.patch", "sha256": "5555"}}, get(ext+"patches"))
	assert.Equal(t, []any{"out/linux_amd64/pilot-discovery"}, get(ext+"make.targets"))
	assert.Equal(t, map[string]any{"VERSION": "1.0.0"}, get(ext+"make.variables"))
	assert.Equal(t, "https://artifacts.internal/envoy.tar.gz", get(ext+"envoy.url"))
	assert.Equal(t, "6666", get(ext+"envoy.sha256"))
	assert.Equal(t, "7777", get(ext+"envoy.proxySha"))
	assert.Equal(t, true, get(ext+"envoy.override"))
	assert.Equal(t, "1.23.4", get(ext+"toolchain.go"))
	assert.Equal(t, "registry.internal:5000/builder/go1.23.4:1", get(ext+"toolchain.builder"))
	assert.Equal(t, "sha256:"+builderHex, get(ext+"toolchain.builderDigest"))
	assert.Equal(t, "registry.internal:5000/base/bookworm:1", get(ext+"base.name"))
	assert.Equal(t, "sha256:"+baseHex, get(ext+"base.digest"))
	assert.Equal(t, "pilot", get(ext+"image.name"))
	assert.Equal(t, "fixture/pilot", get(ext+"image.repository"))
	assert.Equal(t, "1.0.0", get(ext+"image.tag"))

	in := "predicate.buildDefinition.internalParameters."
	assert.Equal(t, "v0.33.1", get(in+"buildkitVersion"))
	assert.Equal(t, "(devel)", get(in+"sailmakerVersion"))
	assert.Equal(t, "sha256:8888", get(in+"inputsKey"))
	assert.Equal(t, "alice", get(in+"trigger.actor"))
	assert.Equal(t, "webhook", get(in+"trigger.kind"))
	assert.Equal(t, "d-42", get(in+"trigger.deliveryId"))
	assert.Equal(t, "b-7", get(in+"trigger.buildId"))
	assert.Equal(t, "2025-03-01T09:59:00Z", get(in+"trigger.time"))

	deps := map[string]map[string]any{}
	for _, d := range get("predicate.buildDefinition.resolvedDependencies").([]any) {
		m := d.(map[string]any)
		deps[m["uri"].(string)] = m["digest"].(map[string]any)
	}
	assert.Equal(t, map[string]map[string]any{
		"git+https://git.internal/istio.git@refs/tags/1.0.0": {"gitCommit": commit},
		"registry.internal:5000/builder/go1.23.4:1":          {"sha256": builderHex},
		"registry.internal:5000/base/bookworm:1":             {"sha256": baseHex},
		"https://artifacts.internal/envoy.tar.gz":            {"sha256": "6666"},
		"file:patches/0001-fix.patch":                        {"sha256": "5555"},
	}, deps)

	assert.Equal(t, "https://sailmaker.dev/sailmaker", get("predicate.runDetails.builder.id"))
	assert.Equal(t, "b-7", get("predicate.runDetails.metadata.invocationId"))
	assert.Equal(t, "2025-03-01T10:00:00Z", get("predicate.runDetails.metadata.startedOn"))
	assert.Equal(t, "2025-03-01T10:03:00Z", get("predicate.runDetails.metadata.finishedOn"))

	// And it parses back.
	back, err := attest.ParseProvenance(raw)
	require.NoError(t, err)
	assert.Equal(t, commit, back.Predicate.BuildDefinition.ExternalParameters.Source.Commit)
	assert.Equal(t, "alice", back.Predicate.BuildDefinition.InternalParameters.Trigger.Actor)
}

// A recipe without patches or Envoy gives an empty patch list and no envoy
// object, never null.
func TestProvenanceWithoutPatchesOrEnvoy(t *testing.T) {
	p := provenanceParams(t)
	p.External.Patches = nil
	p.External.Envoy = nil
	st, err := attest.NewProvenance(p)
	require.NoError(t, err)
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"patches":[]`)
	assert.NotContains(t, string(raw), `"envoy"`)
	assert.Len(t, st.Predicate.BuildDefinition.ResolvedDependencies, 3)
}

func TestProvenanceMissingFields(t *testing.T) {
	p := provenanceParams(t)
	p.External.Source.Commit = ""
	p.External.Base.Digest = ""
	_, err := attest.NewProvenance(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "source.commit")
	assert.Contains(t, err.Error(), "base.digest")

	p = provenanceParams(t)
	p.External.Toolchain.BuilderDigest = "2222"
	_, err = attest.NewProvenance(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "builder")
}

func TestParseProvenanceRejectsOtherDocuments(t *testing.T) {
	_, err := attest.ParseProvenance([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://spdx.dev/Document","subject":[{"name":"x"}]}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "predicateType")
	_, err = attest.ParseProvenance([]byte(`{"spdxVersion":"SPDX-2.3"}`))
	require.Error(t, err)
	_, err = attest.ParseProvenance([]byte(`not json`))
	require.Error(t, err)
}
