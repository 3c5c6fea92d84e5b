package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/config"
)

const (
	builderRef = "127.0.0.1:5000/builder/go1.23.4@sha256:da6bc371a0df84e972a535cc52df83ba3b94bdd427cf630a4ef45778276b30de"
	baseRef    = "127.0.0.1:5000/base/bookworm@sha256:34b7d67eb156c6e500c79d63789dac6791f2a9821ef3f84c0cd003cb77018fc8"
)

func plainBuild() PlainBuild {
	return PlainBuild{
		Target: "proxyv2", Image: "127.0.0.1:5000/bench/x/proxyv2:inc-1", Builder: builderRef, Base: baseRef,
		MakeArgs:   MakeArgs(map[string]string{"VERSION": "1.24.2", "BUILD_WITH_CONTAINER": "0"}, []string{"out/linux_amd64/pilot-agent"}, "/src"),
		TargetArch: "amd64", ProxySHA: "1ed7d44031746a2ad74707202464b4bfdcb38e82", SourceDateEpoch: 1734146883,
		Context: "/w/src", DockerfileDir: "/w/plain", GoModCache: "/s/gomod", EnvoyDir: "/s/envoy", MetadataFile: "/w/m.json",
	}
}

// opt returns the values of every flag occurrence in args.
func opt(args []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			out = append(out, args[i+1])
		}
	}
	return out
}

func TestMakeArgs(t *testing.T) {
	got := MakeArgs(map[string]string{"VERSION": "1.0.0", "BUILD_ALL": "false", "TARGET_ARCH": "amd64"},
		[]string{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent"}, "/src")
	assert.Equal(t, []string{"BUILD_ALL=false", "TARGET_ARCH=amd64", "VERSION=1.0.0",
		"/src/out/linux_amd64/pilot-discovery", "/src/out/linux_amd64/pilot-agent"}, got)
}

func TestPlainBuildArgs(t *testing.T) {
	args, err := plainBuild().Args()
	require.NoError(t, err)
	assert.Equal(t, []string{"dockerfile.v0"}, opt(args, "--frontend"))
	assert.ElementsMatch(t, []string{"context=/w/src", "dockerfile=/w/plain", "gomod=/s/gomod", "envoy=/s/envoy"}, opt(args, "--local"))
	assert.ElementsMatch(t, []string{
		"context:gomod=local:gomod",
		"context:envoy=local:envoy",
		"target=proxyv2",
		"build-arg:BUILDER=" + builderRef,
		"build-arg:BASE=" + baseRef,
		"build-arg:MAKE_ARGS=BUILD_WITH_CONTAINER=0 VERSION=1.24.2 /src/out/linux_amd64/pilot-agent",
		"build-arg:TARGET_ARCH=amd64",
		"build-arg:PROXY_REPO_SHA=1ed7d44031746a2ad74707202464b4bfdcb38e82",
		"build-arg:SOURCE_DATE_EPOCH=1734146883",
	}, opt(args, "--opt"))
	assert.Equal(t, []string{"type=image,name=127.0.0.1:5000/bench/x/proxyv2:inc-1,push=true"}, opt(args, "--output"))
	assert.Equal(t, []string{"rawjson"}, opt(args, "--progress"))
	assert.Equal(t, []string{"/w/m.json"}, opt(args, "--metadata-file"))

	// Every build-arg the benchmark sets is one the Dockerfile declares.
	for _, o := range opt(args, "--opt") {
		if name, ok := strings.CutPrefix(o, "build-arg:"); ok {
			name, _, _ = strings.Cut(name, "=")
			assert.Contains(t, string(Dockerfile), "ARG "+name, "the Dockerfile declares %s", name)
		}
	}
	// The stage names are the recipe's image names.
	for _, stage := range []string{"AS build", "AS pilot", "AS proxyv2"} {
		assert.Contains(t, string(Dockerfile), stage)
	}

	b := plainBuild()
	b.MakeArgs = append(b.MakeArgs, "VERSION=1.0 beta", "X=$(rm -rf /)")
	b.Base = "127.0.0.1:5000/base/bookworm:1"
	b.Context = ""
	_, err = b.Args()
	require.Error(t, err)
	assert.ErrorContains(t, err, `make argument "VERSION=1.0 beta"`)
	assert.ErrorContains(t, err, `make argument "X=$(rm -rf /)"`)
	assert.ErrorContains(t, err, "the base 127.0.0.1:5000/base/bookworm:1 is not pinned by digest")
	assert.ErrorContains(t, err, "no context")
}

func TestBuildctlArgs(t *testing.T) {
	cfg := config.Default()
	cfg.BuildKit.Address = "unix:///run/bk.sock"
	assert.Equal(t, []string{"--addr", "unix:///run/bk.sock"}, buildctlArgs(cfg))
	cfg.BuildKit = config.BuildKitConfig{Address: "tcp://bk:1234", CACert: "/ca", Cert: "/c", Key: "/k", ServerName: "bk"}
	assert.Equal(t, []string{"--addr", "tcp://bk:1234", "--tlscacert", "/ca", "--tlsservername", "bk", "--tlscert", "/c", "--tlskey", "/k"}, buildctlArgs(cfg))
}

func TestParseProgress(t *testing.T) {
	at := func(s float64) *time.Time {
		x := time.Unix(1000, 0).UTC().Add(time.Duration(s * float64(time.Second)))
		return &x
	}
	run := digest.FromString("run")
	exp := digest.FromString("export")
	src := digest.FromString("local")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// sailmaker's own log lines sit between BuildKit's progress lines.
	b.WriteString(`time="2026-11-30T13:48:29Z" level=info msg="fetching source" git=file:///x` + "\n")
	for _, s := range []client.SolveStatus{
		{Statuses: []*client.VertexStatus{{ID: "transferring gomodcache:", Vertex: src, Current: 1000, Started: at(0.1)}}},
		{Statuses: []*client.VertexStatus{{ID: "transferring gomodcache:", Vertex: src, Current: 2900, Started: at(0.1), Completed: at(0.3)}}},
		{Statuses: []*client.VertexStatus{{ID: "transferring source:", Vertex: src, Current: 99999, Started: at(0.1), Completed: at(0.5)}}},
		{Statuses: []*client.VertexStatus{{ID: "sha256:aaa", Vertex: run, Current: 100, Total: 300, Started: at(0.2)}}},
		{Statuses: []*client.VertexStatus{{ID: "sha256:aaa", Vertex: run, Current: 300, Total: 300, Started: at(0.2), Completed: at(0.6)}}},
		{Statuses: []*client.VertexStatus{{ID: "sha256:bbb", Vertex: run, Current: 50, Total: 50, Started: at(0.2), Completed: at(0.4)}}},
		{Statuses: []*client.VertexStatus{{ID: "extracting sha256:aaa", Vertex: run, Started: at(0.6), Completed: at(0.9)}}},
		{Vertexes: []*client.Vertex{{Digest: run, Name: "[build 4/4] RUN --network=none     --mount=type=cache,id=x,target=/root/.cache/go-build     make VERSION=1.0.0 /src/out/linux_amd64/pilot-discovery", Started: at(1)}}},
		{Logs: []*client.VertexLog{{Vertex: run, Data: []byte("go build ...\n")}}},
		{Vertexes: []*client.Vertex{{Digest: run, Name: "[build 4/4] RUN --network=none     --mount=type=cache,id=x,target=/root/.cache/go-build     make VERSION=1.0.0 /src/out/linux_amd64/pilot-discovery", Started: at(1), Completed: at(9)}}},
		{Statuses: []*client.VertexStatus{{ID: "exporting layers", Vertex: exp, Started: at(9.5), Completed: at(10)}}},
		{Vertexes: []*client.Vertex{{Digest: exp, Name: "exporting to image", Started: at(10)}}},
		{Statuses: []*client.VertexStatus{{ID: "pushing layers", Vertex: exp, Started: at(11), Completed: at(12)}}},
		{Statuses: []*client.VertexStatus{{ID: "pushing manifest for x", Vertex: exp, Started: at(12), Completed: at(12.5)}}},
		{Vertexes: []*client.Vertex{{Digest: exp, Name: "exporting to image", Started: at(10), Completed: at(12.6)}}},
	} {
		require.NoError(t, enc.Encode(s))
		b.WriteString(`time="2026-11-30T13:48:30Z" level=info msg="something else"` + "\n")
	}
	got, err := parseProgress(&b, "gomodcache")
	require.NoError(t, err)
	assert.Equal(t, *at(9.5), got.Export.Start)
	assert.Equal(t, *at(12.6), got.Export.End)
	assert.Equal(t, 1500*time.Millisecond, got.Push.duration())
	assert.Equal(t, 8*time.Second, got.Make.duration())
	assert.Equal(t, int64(2900), got.ModuleSyncBytes, "the module cache's transfer, not the source's")
	assert.Equal(t, 200*time.Millisecond, got.ModuleSync.duration())
	assert.Equal(t, int64(350), got.PullBytes, "each layer once, at its largest")
	assert.Equal(t, 700*time.Millisecond, got.Pull.duration(), "downloads and unpacking")
	assert.Empty(t, got.Failure)
	assert.True(t, got.MakeRan)
	phases := got.solvePhases("builder pull")
	assert.Equal(t, []Phase{{Name: "module sync", Duration: 200 * time.Millisecond, Within: "solve"},
		{Name: "builder pull", Duration: 700 * time.Millisecond, Within: "solve"}, {Name: "make", Duration: 8 * time.Second, Within: "solve"}}, phases)

	// A failed step says so, with its last output; a line that is not
	// progress (buildctl's own message) is passed over.
	b.Reset()
	require.NoError(t, enc.Encode(client.SolveStatus{Logs: []*client.VertexLog{{Vertex: run, Data: []byte("main.go:3: undefined: x\n")}}}))
	require.NoError(t, enc.Encode(client.SolveStatus{Vertexes: []*client.Vertex{{Digest: run, Name: "[build 4/4] RUN make", Error: "exit code: 2"}}}))
	b.WriteString("error: failed to solve: exit code: 2\n")
	got, err = parseProgress(&b, "gomod")
	require.NoError(t, err)
	assert.Contains(t, got.Failure, "[build 4/4] RUN make: exit code: 2")
	assert.Contains(t, got.Failure, "undefined: x")
	assert.False(t, got.MakeRan, "make failed")

	// sailmaker's validation: its log line gives its time; what it pulls
	// of the images' bases is not the builder image's pull.
	b.Reset()
	load := digest.FromString("load")
	require.NoError(t, enc.Encode(client.SolveStatus{Vertexes: []*client.Vertex{{Digest: load, Name: builder.ValidationBaseVertex + "pilot linux/amd64", Started: at(20)}}}))
	require.NoError(t, enc.Encode(client.SolveStatus{Statuses: []*client.VertexStatus{{ID: "sha256:ccc", Vertex: load, Current: 5000, Total: 5000, Started: at(20), Completed: at(21)}}}))
	b.WriteString(`time="2026-11-30T16:18:59Z" level=info msg="validated: every binary reports the recipe's version and commit, Envoy is the verified input" recipe=fixture@1.0.0 took=1.426s` + "\n")
	b.WriteString(`time="2026-11-30T16:18:59Z" level=info msg="assembled: the images and packages are laid out" recipe=fixture@1.0.0 took=512ms` + "\n")
	got, err = parseProgress(&b, "gomodcache")
	require.NoError(t, err)
	assert.Equal(t, 1426*time.Millisecond, got.Validate)
	assert.Equal(t, 512*time.Millisecond, got.Assembly)
	assert.Zero(t, got.PullBytes)
	assert.True(t, got.Pull.empty())

	// A make step BuildKit took from its cache did not run.
	b.Reset()
	require.NoError(t, enc.Encode(client.SolveStatus{Vertexes: []*client.Vertex{{Digest: run, Name: "make TARGET_ARCH=amd64 out/linux_amd64/pilot-discovery (no network)", Started: at(1), Completed: at(1), Cached: true}}}))
	got, err = parseProgress(&b, "gomodcache")
	require.NoError(t, err)
	assert.False(t, got.MakeRan)
}

// Pruning sailmaker's Go build cache for a cold build takes its cache
// mount, its make step's results and the copy of them CompileState makes
// for each platform, and leaves the rest.
func TestSailmakerColdRecords(t *testing.T) {
	g := goCacheRecords{
		cacheID:    "sailmaker-gocache-0123456789abcdef",
		makeStep:   func(args string) bool { return strings.Contains(args, "/src/out/linux_amd64/pilot-discovery") },
		downstream: isCollectStep,
	}
	for _, c := range []struct {
		u            client.UsageInfo
		mount, prune bool
	}{
		{client.UsageInfo{RecordType: client.UsageRecordTypeCacheMount, Description: `cached mount /root/.cache/go-build from exec /bin/sh -euc make with id "sailmaker-gocache-0123456789abcdef"`}, true, true},
		{client.UsageInfo{RecordType: client.UsageRecordTypeCacheMount, Description: `cached mount /root/.cache/go-build from exec /bin/sh -euc make with id "sailmaker-gocache-check-1"`}, true, false},
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "mount /out from exec /bin/sh -euc cd /src && make /src/out/linux_amd64/pilot-discovery"}, false, true},
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "collect the linux/amd64 build"}, false, true},
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "collect the linux/arm64/v8 build"}, false, true},
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "collect the linux/amd64, linux/arm64/v8 builds"}, false, true},
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "pulled from 127.0.0.1:5000/builder/go1.23.4@sha256:abc"}, false, false},
		{client.UsageInfo{RecordType: client.UsageRecordTypeLocalSource, Description: "local source for gomodcache"}, false, false},
	} {
		mount, prune := g.match(&c.u)
		assert.Equal(t, c.prune, prune, c.u.Description)
		if prune {
			assert.Equal(t, c.mount, mount, c.u.Description)
		}
	}
}

func TestIsMakeStep(t *testing.T) {
	assert.True(t, isMakeStep("make out/linux_amd64/pilot-discovery out/linux_amd64/pilot-agent (no network)"))
	assert.True(t, isMakeStep("[build 4/4] RUN --network=none     --mount=type=bind,from=gomod,target=/go/pkg/mod     make BUILD_ALL=false VERSION=1.0.0 /src/out/linux_amd64/pilot-discovery"))
	assert.False(t, isMakeStep("[prime 2/2] RUN --network=none --mount=type=bind,target=/src echo \"primed for x\""))
	assert.False(t, isMakeStep("[internal] load build context"))
	assert.False(t, isMakeStep("docker-image://127.0.0.1:5000/builder/go1.23.4@sha256:abc"))
}

func TestWindows(t *testing.T) {
	t0 := time.Unix(0, 0)
	a := window{t0.Add(time.Second), t0.Add(3 * time.Second)}
	b := window{t0.Add(2 * time.Second), t0.Add(5 * time.Second)}
	u := union(a, b)
	assert.Equal(t, 4*time.Second, u.duration())
	assert.Equal(t, a, union(a, window{}))
	assert.Equal(t, b, union(window{}, b))
	assert.True(t, window{}.empty())
}
