package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/recipes"
)

func verdict(t *testing.T, vs []Verdict, name string) Verdict {
	t.Helper()
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no verdict %q in %+v", name, vs)
	return Verdict{}
}

func TestJudgeAcrossScenarios(t *testing.T) {
	s := time.Second
	sm := func(sc Scenario, run int, sync, content int64, assemble time.Duration, rss int64) Measurement {
		return Measurement{Scenario: sc, Path: Sailmaker, Run: run, Wall: 10 * s, ModuleSync: sync, ModuleContent: content, PeakRSS: rss,
			Phases: []Phase{{Name: "fetch", Duration: s}, {Name: "solve", Duration: 5 * s}, {Name: "make", Duration: 4 * s, Within: "solve"}, {Name: "assemble", Duration: assemble}}}
	}
	first := sm(FirstTime, 1, 600<<20, 600<<20, 1500*time.Millisecond, 80<<20)
	first.Phases = append([]Phase{{Name: "module download", Duration: 30 * s}}, first.Phases...)
	first.Phases = append(first.Phases, Phase{Name: "module sync", Duration: 17 * s, Within: "solve"}, Phase{Name: "builder pull", Duration: 6 * s, Within: "solve"})
	first.ImagePull = 157 << 20
	input := []Measurement{
		first,
		sm(Incremental, 1, 3000, 0, 1200*time.Millisecond, 60<<20),
		sm(Incremental, 2, 3000, 0, 1300*time.Millisecond, 70<<20),
		sm(Incremental, 3, 3100, 100, 2500*time.Millisecond, 200<<20),
		sm(BaseBump, 1, 3000, 0, 900*time.Millisecond, 60<<20),
		{Scenario: NoOp, Path: Sailmaker, Run: 1, Wall: s / 10, UpToDate: true, PeakRSS: 30 << 20},
	}
	vs := Judge(Summarize(input))

	ft := verdict(t, vs, "first-time")
	assert.Nil(t, ft.Met, "first-time costs are reported, not judged")
	assert.Equal(t, "module download 30.0 s, module sync 17.0 s (600.0 MiB), builder pull 6.00 s (157.0 MiB)", ft.Note)

	mc := verdict(t, vs, TargetModuleCache)
	require.NotNil(t, mc.Met)
	assert.False(t, *mc.Met, "one incremental run moved 100 bytes of content")
	assert.Equal(t, "incremental, base-bump: 2.9 KiB received, 100 B of it file content", mc.Note)

	as := verdict(t, vs, TargetAssembly)
	require.NotNil(t, as.Met)
	assert.True(t, *as.Met, "medians: first-time 1.5 s, incremental 1.3 s, base bump 0.9 s")
	assert.Equal(t, "1.50 s at most (median, first-time)", as.Note)

	// sailmaker's assemble timing includes validation, which the target
	// leaves out.
	slow := sm(Cold, 1, 3000, 0, 3500*time.Millisecond, 60<<20)
	slow.Phases = append(slow.Phases, Phase{Name: "validate", Duration: 1900 * time.Millisecond, Within: "assemble"})
	as = verdict(t, Judge(Summarize(append(input, slow))), TargetAssembly)
	require.NotNil(t, as.Met)
	assert.True(t, *as.Met)
	assert.Equal(t, "1.60 s at most (median, cold)", as.Note, "3.5 s less 1.9 s of validation")
	slow.Phases[len(slow.Phases)-1].Duration = s
	as = verdict(t, Judge(Summarize(append(input, slow))), TargetAssembly)
	require.NotNil(t, as.Met)
	assert.False(t, *as.Met, "3.5 s less 1 s of validation")
	assert.Equal(t, "2.50 s at most (median, cold)", as.Note)
	// Since validation runs beside the assembly, sailmaker logs the
	// assembly's own time ("images"), which the target takes when there.
	slow.Phases = append(slow.Phases, Phase{Name: "images", Duration: 2100 * time.Millisecond, Within: "assemble"})
	as = verdict(t, Judge(Summarize(append(input, slow))), TargetAssembly)
	require.NotNil(t, as.Met)
	assert.False(t, *as.Met, "the images alone took 2.1 s")
	assert.Equal(t, "2.10 s at most (median, cold)", as.Note)

	mem := verdict(t, vs, TargetMemory)
	require.NotNil(t, mem.Met)
	assert.False(t, *mem.Met, "one run peaked at 200 MiB")
	assert.Equal(t, "200.0 MiB at most (incremental)", mem.Note)

	// Without sailmaker's incremental or base-bump runs (the floor only),
	// that target is not judged at all.
	vs = Judge(Summarize([]Measurement{{Scenario: Incremental, Path: Floor, Run: 1, Wall: s}}))
	for _, v := range vs {
		assert.NotEqual(t, TargetModuleCache, v.Name)
	}
}

func TestFmtPhases(t *testing.T) {
	s := time.Second
	got := fmtPhases([]Phase{{Name: "fetch", Duration: s / 10}, {Name: "solve", Duration: 20 * s},
		{Name: "module sync", Duration: s / 100, Within: "solve"}, {Name: "make", Duration: 19 * s, Within: "solve"},
		{Name: "assemble", Duration: s}, {Name: "push", Duration: s / 2}})
	assert.Equal(t, "fetch 0.10 s · solve 20.0 s (module sync 0.01 s, make 19.0 s) · assemble 1.00 s · push 0.50 s", got)
	assert.Equal(t, "make 1.00 s", fmtPhases([]Phase{{Name: "make", Duration: s}}))
}

func TestGoCacheRecords(t *testing.T) {
	target := "/src/out/linux_amd64/pilot-discovery"
	g := goCacheRecords{cacheID: "sailmaker-gocache-0123456789abcdef", makeStep: func(args string) bool {
		return strings.HasPrefix(args, "/bin/sh -euc ") && strings.Contains(args, target)
	}}
	script := "/bin/sh -euc mkdir -p 'out/linux_amd64/release'\nmake 'VERSION=1.24.2' '" + target + "'\n"
	for _, c := range []struct {
		u             client.UsageInfo
		mount, pruned bool
	}{
		{client.UsageInfo{RecordType: client.UsageRecordTypeCacheMount, Description: `cached mount /root/.cache/go-build from exec ` + script + ` with id "sailmaker-gocache-0123456789abcdef"`}, true, true},
		// Another builder's cache, a --check-reproducible cache, the plain path's: kept.
		{client.UsageInfo{RecordType: client.UsageRecordTypeCacheMount, Description: `cached mount /root/.cache/go-build from exec sh with id "sailmaker-gocache-fedcba9876543210"`}, true, false},
		{client.UsageInfo{RecordType: client.UsageRecordTypeCacheMount, Description: `cached mount /root/.cache/go-build from exec sh with id "sailmaker-gocache-check-1234"`}, true, false},
		{client.UsageInfo{RecordType: client.UsageRecordTypeCacheMount, Description: `cached mount /root/.cache/go-build from exec /bin/sh -c make ${MAKE_ARGS} with id "sailmaker-bench-plain-gocache"`}, true, false},
		// The make step's results: pruned, or BuildKit would reuse them.
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "mount / from exec " + script}, false, true},
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "mount /out from exec " + script}, false, true},
		// The builder image, the module cache's snapshot, the source: kept.
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "pulled from 127.0.0.1:5000/builder/go1.23.4@sha256:abc"}, false, false},
		{client.UsageInfo{RecordType: client.UsageRecordTypeLocalSource, Description: "local source for gomodcache"}, false, false},
		{client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "mount / from exec /bin/sh -c make ${MAKE_ARGS}"}, false, false},
	} {
		mount, pruned := g.match(&c.u)
		assert.Equal(t, c.pruned, pruned, c.u.Description)
		if pruned {
			assert.Equal(t, c.mount, mount, c.u.Description)
		}
	}
	assert.Equal(t, "sailmaker-gocache-0123456789abcdef", SailmakerGoCacheID("0123456789abcdef0123"))

	// The Dockerfile frontend's cache id is written as a path.
	plain := goCacheRecords{cacheID: PlainGoCacheID, makeStep: func(args string) bool { return strings.HasPrefix(args, "/bin/sh -c make ${MAKE_ARGS}") }}
	mount, ok := plain.match(&client.UsageInfo{RecordType: client.UsageRecordTypeCacheMount,
		Description: `cached mount /root/.cache/go-build from exec /bin/sh -c make ${MAKE_ARGS} with id "/sailmaker-bench-plain-gocache"`})
	assert.True(t, mount && ok)
	_, ok = plain.match(&client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "mount / from exec /bin/sh -c make ${MAKE_ARGS}"})
	assert.True(t, ok)
	// The image stages' copies of what make built would stand in for it.
	plain.downstream = func(desc string) bool { return strings.Contains(desc, "] COPY --from=build ") }
	_, ok = plain.match(&client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "[pilot 2/2] COPY --from=build /src/out/linux_amd64/pilot-discovery /usr/local/bin/pilot-discovery"})
	assert.True(t, ok)
	_, ok = plain.match(&client.UsageInfo{RecordType: client.UsageRecordTypeRegular, Description: "[proxyv2 3/4] COPY --from=envoy envoy /usr/local/bin/envoy"})
	assert.False(t, ok)
}

func TestImageTargetsAndRehome(t *testing.T) {
	var r recipes.Recipe
	r.Spec.Toolchain.Builder = "127.0.0.1:5000/builder/go1.23.4:1"
	r.Spec.Make.Targets = []string{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent", "out/linux_amd64/istioctl", "out/linux_amd64/istio-cni"}
	r.Spec.Images = []recipes.Image{
		{Name: "pilot", Base: "127.0.0.1:5000/base/bookworm:2", Files: []recipes.File{{From: "build:out/linux_amd64/pilot-discovery", To: "/usr/local/bin/pilot-discovery"}}},
		{Name: "proxyv2", Base: "127.0.0.1:5001/base/bookworm:2", Files: []recipes.File{{From: "build:out/linux_amd64/pilot-agent", To: "/usr/local/bin/pilot-agent"},
			{From: "input:envoy", To: "/usr/local/bin/envoy"}}},
	}
	assert.Equal(t, []string{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent"}, imageTargets(&r), "the packages' targets are left out")
	rehome(&r, "127.0.0.1:5000")
	assert.Equal(t, "${REGISTRY}/builder/go1.23.4:1", r.Spec.Toolchain.Builder)
	assert.Equal(t, "${REGISTRY}/base/bookworm:2", r.Spec.Images[0].Base)
	assert.Equal(t, "127.0.0.1:5001/base/bookworm:2", r.Spec.Images[1].Base, "another registry is not the user's")

	r.Spec.Images = nil
	assert.Len(t, imageTargets(&r), 4, "no image names a target: all of them")
}

func TestDescribeModuleCache(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "cache", "download"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cache", "download", "a.zip"), make([]byte, 1000), 0o444))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.mod"), []byte("module b\n"), 0o444))
	mc, err := describeModuleCache(context.Background(), dir)
	require.NoError(t, err)
	assert.Equal(t, 2, mc.Files)
	assert.Equal(t, int64(1009), mc.Size)
	// Four stat packets (two folders, two files) of a few dozen bytes each.
	assert.Greater(t, mc.Metadata, int64(4*20))
	assert.Less(t, mc.Metadata, int64(4*200))
	assert.Zero(t, mc.contentOf(0))
	assert.Zero(t, mc.contentOf(mc.Metadata), "metadata only")
	assert.Equal(t, int64(1009+40), mc.contentOf(mc.Metadata+1009+40))

	// A larger file adds nothing but its stat packet.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cache", "download", "a.zip"), make([]byte, 1<<20), 0o444))
	mc2, err := describeModuleCache(context.Background(), dir)
	require.NoError(t, err)
	assert.InDelta(t, mc.Metadata, mc2.Metadata, 4)
}

func TestReadHWM(t *testing.T) {
	v, ok := readHWM("/proc/self/status")
	require.True(t, ok)
	assert.Greater(t, v, int64(1<<20))
	_, ok = readHWM(filepath.Join(t.TempDir(), "none"))
	assert.False(t, ok)
}
