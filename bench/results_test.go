package bench

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMedianAndRatio(t *testing.T) {
	assert.Equal(t, time.Duration(0), Median([]time.Duration{}))
	assert.Equal(t, 3*time.Second, Median([]time.Duration{5 * time.Second, time.Second, 3 * time.Second}))
	assert.Equal(t, 2*time.Second, Median([]time.Duration{3 * time.Second, time.Second}))
	assert.Equal(t, int64(7), Median([]int64{7}))
	xs := []int{3, 1, 2}
	assert.Equal(t, 2, Median(xs))
	assert.Equal(t, []int{3, 1, 2}, xs, "the input is not reordered")

	assert.InDelta(t, 1.5, Ratio(3*time.Second, 2*time.Second), 1e-9)
	assert.Zero(t, Ratio(time.Second, 0))
}

func ms(sc Scenario, p Path, run int, wall time.Duration, up int64, phases ...Phase) Measurement {
	return Measurement{Scenario: sc, Path: p, Run: run, Wall: wall, Traffic: Traffic{Uploaded: up}, Phases: phases}
}

func TestSummarizeAndJudge(t *testing.T) {
	s := time.Second
	input := []Measurement{
		ms(Incremental, Floor, 1, 10*s, 100),
		ms(Incremental, Sailmaker, 2, 14*s, 300, Phase{Name: "solve", Duration: 12 * s}, Phase{Name: "push", Duration: s}),
		ms(Incremental, Sailmaker, 1, 12*s, 200, Phase{Name: "solve", Duration: 10 * s}, Phase{Name: "push", Duration: 2 * s}),
		ms(Incremental, Sailmaker, 3, 30*s, 100, Phase{Name: "solve", Duration: 28 * s}),
		ms(Incremental, Floor, 2, 9*s, 100),
		ms(Incremental, Plain, 1, 40*s, 900),
		ms(NoOp, Sailmaker, 1, 2*s, 0),
		ms(Cold, Sailmaker, 1, 60*s, 5000),
		ms(Cold, Floor, 1, 50*s, 5000),
		{Scenario: BaseBump, Path: Sailmaker, Run: 1, Wall: s, UploadedLayers: 1, Traffic: Traffic{Uploaded: 2048}},
	}
	sums := Summarize(input)
	var order []string
	for _, x := range sums {
		order = append(order, string(x.Scenario)+"/"+string(x.Path))
	}
	assert.Equal(t, []string{"cold/sailmaker", "cold/floor", "no-op/sailmaker", "incremental/sailmaker", "incremental/plain", "incremental/floor", "base-bump/sailmaker"}, order)

	inc := sums[3]
	assert.Equal(t, 3, inc.Runs)
	assert.Equal(t, 14*s, inc.Wall)
	assert.Equal(t, 12*s, inc.Min)
	assert.Equal(t, 30*s, inc.Max)
	assert.Equal(t, int64(200), inc.Uploaded)
	// A phase a run did not report counts as 0 there.
	assert.Equal(t, []Phase{{Name: "solve", Duration: 12 * s}, {Name: "push", Duration: s}}, inc.Phases)
	assert.Equal(t, 9500*time.Millisecond, sums[5].Wall)

	vs := Judge(sums)
	require.Len(t, vs, 5)
	cold, noop, incr, bump := vs[0], vs[1], vs[2], vs[3]
	// No module cache received at all (a layer BuildKit holds) meets the
	// module cache target.
	assert.Equal(t, TargetModuleCache, vs[4].Name)
	require.NotNil(t, vs[4].Met)
	assert.True(t, *vs[4].Met)
	assert.Equal(t, "incremental, base-bump: 0 B received, 0 B of it file content", vs[4].Note)
	assert.InDelta(t, 1.2, cold.VsFloor, 1e-9)
	require.NotNil(t, cold.Met)
	assert.False(t, *cold.Met)
	assert.Equal(t, "1.20x: missed by 14%", cold.Note)
	assert.Zero(t, cold.VsPlain)

	require.NotNil(t, noop.Met)
	assert.False(t, *noop.Met, "2 s is over the 1 s target")
	assert.Equal(t, "2.00 s, 0 B pushed", noop.Note)

	assert.InDelta(t, 14.0/9.5, incr.VsFloor, 1e-9)
	assert.InDelta(t, 14.0/40, incr.VsPlain, 1e-9)
	require.NotNil(t, incr.Met)
	assert.False(t, *incr.Met)

	require.NotNil(t, bump.Met)
	assert.False(t, *bump.Met, "a layer went up again")
	assert.Equal(t, "1 layers uploaded, 2.0 KiB pushed", bump.Note)

	// Without the floor, the incremental target cannot be judged.
	vs = Judge(Summarize([]Measurement{ms(Incremental, Sailmaker, 1, s, 0)}))
	require.Len(t, vs, 2)
	assert.Equal(t, "incremental", vs[0].Name)
	assert.Nil(t, vs[0].Met)
}

func TestResultsTableAndJSON(t *testing.T) {
	s := time.Second
	r := &Results{
		Started:  time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC),
		Machine:  Machine{CPU: "Test CPU", Cores: 2, Memory: 24 << 30, Kernel: "Linux 6", LoadStart: "1.00 0.50 0.25", LoadEnd: "2.00 1.00 0.50"},
		Settings: Settings{Recipe: "fixture@1.0.0", Source: "file:///x", Runs: 3, ColdRuns: 1, Scenarios: []Scenario{Cold, Incremental}},
		Measurements: []Measurement{
			ms(Cold, Sailmaker, 1, 100*s, 3<<20, Phase{Name: "fetch", Duration: s / 2}, Phase{Name: "solve", Duration: 90 * s}),
			ms(Cold, Floor, 1, 80*s, 3<<20),
			ms(Incremental, Sailmaker, 1, 5*s, 1<<20),
			ms(Incremental, Sailmaker, 2, 6*s, 1<<20),
			ms(Incremental, Floor, 1, 5*s, 1<<20),
			ms(Incremental, Floor, 2, 5*s, 1<<20),
		},
	}
	r.Measurements[0].PeakRSS = 50 << 20
	r.Measurements[0].Load = "3.50 2.00 1.00"
	r.Measurements[2].Load = "1.25 1.00 1.00"
	r.Measurements[3].Load = "0.75 1.00 1.00"
	r.update()
	var b bytes.Buffer
	require.NoError(t, r.WriteTable(&b))
	out := b.String()
	assert.Contains(t, out, "Machine: Test CPU; 2 cores, 24.0 GiB RAM; Linux 6. Load average 1.00 0.50 0.25 at the start, 2.00 1.00 0.50 at the end.")
	assert.Contains(t, out, "medians of 3 runs (cold: 1 run)")
	lines := strings.Split(out, "\n")
	var rows []string
	for _, l := range lines {
		if strings.HasPrefix(l, "| cold") || strings.HasPrefix(l, "| incremental") {
			rows = append(rows, l)
		}
	}
	require.Len(t, rows, 6, out)
	assert.Regexp(t, `^\| cold +\| sailmaker \| 1 +\| 1 m 40 s +\| - +\| 3\.0 MiB .*\| 3\.50 +\| fetch 0\.50 s · solve 90\.0 s`, rows[0])
	assert.Regexp(t, `^\| cold +\| floor .*\| - +\| +\|$`, rows[1], "no load recorded")
	assert.Regexp(t, `^\| incremental \| sailmaker \| 2 +\| 5\.50 s +\| 5\.00 s – 6\.00 s \|.*\| 0\.75 – 1\.25 \|`, rows[2])
	assert.Regexp(t, `^\| cold +\| 1\.25x +\| - +\| within 1\.05x of the floor \(first-time costs apart\) +\| missed \(1\.25x: missed by 19%\) +\| 50\.0 MiB`, rows[4])
	assert.Regexp(t, `^\| incremental +\| 1\.10x +\| - +\| within 1\.2x of the floor +\| met \(1\.10x\)`, rows[5])
	// Columns line up: every table line of a table has the same width.
	assert.Equal(t, len([]rune(rows[0])), len([]rune(rows[1])))

	file := filepath.Join(t.TempDir(), "results.json")
	require.NoError(t, r.WriteJSON(file))
	back, err := ReadResults(file)
	require.NoError(t, err)
	assert.Equal(t, r.Summaries, back.Summaries)
	assert.Equal(t, r.Measurements, back.Measurements)
	require.Len(t, back.Verdicts, 4, "cold, incremental, module cache, memory")
	assert.Equal(t, TargetMemory, back.Verdicts[3].Name)
	require.NotNil(t, back.Verdicts[3].Met)
	assert.True(t, *back.Verdicts[3].Met)
	assert.Contains(t, out, "| memory ")
	assert.Contains(t, out, "sailmaker's peak RSS under 150 MB")
	require.NotNil(t, back.Verdicts[0].Met)
	assert.False(t, *back.Verdicts[0].Met)
}

func TestRunsNote(t *testing.T) {
	s := Settings{Runs: 3, ColdRuns: 1, Scenarios: []Scenario{Cold, NoOp}}
	assert.Equal(t, "medians of 3 runs (cold: 1 run)", runsNote(s))
	s.Scenarios = []Scenario{Cold}
	assert.Equal(t, "medians of 1 run", runsNote(s))
	s.Scenarios, s.Runs = []Scenario{Incremental}, 5
	assert.Equal(t, "medians of 5 runs", runsNote(s))
}

func TestParseLists(t *testing.T) {
	sc, err := ParseScenarios("base-bump, noop,cold")
	require.NoError(t, err)
	assert.Equal(t, []Scenario{Cold, NoOp, BaseBump}, sc)
	sc, err = ParseScenarios("all")
	require.NoError(t, err)
	assert.Equal(t, append(append([]Scenario{}, Scenarios...), PoolScenarios...), sc)
	_, err = ParseScenarios("cold,warm")
	assert.ErrorContains(t, err, `unknown scenario "warm"`)

	ps, err := ParsePaths("floor,sailmaker")
	require.NoError(t, err)
	assert.Equal(t, []Path{Sailmaker, Floor}, ps)
	_, err = ParsePaths("docker")
	assert.ErrorContains(t, err, `unknown path "docker"`)
}

func TestRepoComponentAndRotate(t *testing.T) {
	assert.Equal(t, "20261122-030405", repoComponent("20261122-030405"))
	assert.Equal(t, "my-run-1", repoComponent("My Run_1!"))
	assert.Equal(t, "run", repoComponent("__"))

	a, b, c := &sailmakerRunner{}, &plainRunner{}, &floorRunner{}
	rs := []runner{a, b, c}
	assert.Equal(t, []runner{a, b, c}, rotate(rs, 0))
	assert.Equal(t, []runner{b, c, a}, rotate(rs, 1))
	assert.Equal(t, []runner{a, b, c}, rotate(rs, 3))
	assert.Nil(t, rotate(nil, 2))
}
