package bench

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sailmaker/sailmaker/internal/output"
)

// Phase is a part of one build's wall time. A phase Within another is a
// part of that one, read from BuildKit's progress (module sync, image pull
// and make within the solve); such parts can overlap each other (BuildKit
// pulls the builder image while it takes in the module cache).
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration"`
	Within   string        `json:"within,omitempty"`
}

// Image is one image a build pushed.
type Image struct {
	Name   string `json:"name"`
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// Measurement is one build by one path. Durations are in nanoseconds in
// JSON, bytes are bytes.
type Measurement struct {
	Scenario Scenario `json:"scenario"`
	Path     Path     `json:"path"`
	// Run counts from 1 within the scenario.
	Run  int           `json:"run"`
	Wall time.Duration `json:"wall"`
	// Phases split Wall, in the order they happen; what each path can
	// tell (sailmaker: its own --timings).
	Phases []Phase `json:"phases"`
	// Push is the time spent pushing (also one of Phases).
	Push time.Duration `json:"push"`
	// Traffic is what went to and from the registry during the build.
	Traffic Traffic `json:"traffic"`
	// UploadedLayers is how many of the images' layers were uploaded
	// (blobs that were neither in the repository nor mounted).
	UploadedLayers int `json:"uploadedLayers"`
	// PeakRSS is the sailmaker process's peak resident memory, in bytes.
	PeakRSS int64 `json:"peakRss,omitempty"`
	// UpToDate: sailmaker found the images already built from the same
	// inputs and built nothing.
	UpToDate bool `json:"upToDate,omitempty"`
	// MakeRan: BuildKit ran upstream's make (sailmaker and plain; not
	// reused from its cache).
	MakeRan bool `json:"makeRan,omitempty"`
	// ModuleSync is what BuildKit received for the Go module cache
	// (sailmaker and plain; bytes of file metadata and content) and
	// ModuleContent the part that was file content: ModuleSync less the
	// metadata of every file of the module cache (Results.ModuleCache).
	ModuleSync    int64 `json:"moduleSync,omitempty"`
	ModuleContent int64 `json:"moduleContent,omitempty"`
	// ImagePull is what BuildKit downloaded of image layers.
	ImagePull int64 `json:"imagePull,omitempty"`
	// SelfReportedUploaded is what sailmaker's -o json says it uploaded.
	SelfReportedUploaded int64   `json:"selfReportedUploaded,omitempty"`
	Images               []Image `json:"images"`
	Patch                *Patch  `json:"patch,omitempty"`
	// Load is /proc/loadavg's load averages when the build started (the
	// machine's other work).
	Load string `json:"load,omitempty"`
	Log  string `json:"log,omitempty"`
}

// Summary is the measurements of one scenario and path: medians, and the
// range of wall times.
type Summary struct {
	Scenario   Scenario      `json:"scenario"`
	Path       Path          `json:"path"`
	Runs       int           `json:"runs"`
	Wall       time.Duration `json:"wall"`
	Min        time.Duration `json:"min"`
	Max        time.Duration `json:"max"`
	Push       time.Duration `json:"push"`
	Uploaded   int64         `json:"uploaded"`
	Downloaded int64         `json:"downloaded"`
	// UploadedLayers is the most any run uploaded.
	UploadedLayers int     `json:"uploadedLayers"`
	Phases         []Phase `json:"phases"`
	// PeakRSS is the highest of the runs (sailmaker only).
	PeakRSS  int64 `json:"peakRss,omitempty"`
	UpToDate int   `json:"upToDate,omitempty"`
	// ModuleSync and ImagePull are medians; ModuleContent is the most any
	// run moved.
	ModuleSync    int64 `json:"moduleSync,omitempty"`
	ModuleContent int64 `json:"moduleContent,omitempty"`
	ImagePull     int64 `json:"imagePull,omitempty"`
	// LoadMin and LoadMax are the lowest and highest 1-minute load
	// average at the start of the runs (the machine's other work; 0 when
	// not recorded).
	LoadMin float64 `json:"loadMin,omitempty"`
	LoadMax float64 `json:"loadMax,omitempty"`
}

// load1 is the 1-minute load average of a Measurement.Load; ok is false
// when it was not recorded.
func load1(load string) (float64, bool) {
	f := strings.Fields(load)
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}

// Verdict judges one target: a scenario's (sailmaker against the other
// paths) or one that spans scenarios (module cache, assembly, memory).
type Verdict struct {
	// Name is the scenario, or the target's name.
	Name     string   `json:"name"`
	Scenario Scenario `json:"scenario,omitempty"`
	// VsFloor and VsPlain are sailmaker's median wall time over theirs (0:
	// not measured).
	VsFloor float64 `json:"vsFloor,omitempty"`
	VsPlain float64 `json:"vsPlain,omitempty"`
	Target  string  `json:"target"`
	// Met is nil when the scenario's target could not be judged (sailmaker,
	// or the floor it is measured against, did not run).
	Met  *bool  `json:"met,omitempty"`
	Note string `json:"note,omitempty"`
}

// Median is the middle value (the mean of the two middle ones for an even
// count); 0 for none.
func Median[T ~int64 | ~int](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Ratio is a/b, or 0 when b is 0.
func Ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Summarize groups measurements by scenario and path, in running and
// reporting order.
func Summarize(ms []Measurement) []Summary {
	type key struct {
		s Scenario
		p Path
	}
	groups := map[key][]Measurement{}
	for _, m := range ms {
		k := key{m.Scenario, m.Path}
		groups[k] = append(groups[k], m)
	}
	var out []Summary
	for _, sc := range Scenarios {
		for _, p := range Paths {
			g := groups[key{sc, p}]
			if len(g) == 0 {
				continue
			}
			out = append(out, summarize(sc, p, g))
		}
	}
	return out
}

func summarize(sc Scenario, p Path, g []Measurement) Summary {
	s := Summary{Scenario: sc, Path: p, Runs: len(g)}
	var walls, pushes []time.Duration
	var up, down, sync, pull []int64
	phases := map[string][]time.Duration{}
	within := map[string]string{}
	var order []string
	loaded := false
	for _, m := range g {
		sync = append(sync, m.ModuleSync)
		pull = append(pull, m.ImagePull)
		s.ModuleContent = max(s.ModuleContent, m.ModuleContent)
		walls = append(walls, m.Wall)
		pushes = append(pushes, m.Push)
		up = append(up, m.Traffic.Uploaded)
		down = append(down, m.Traffic.Downloaded)
		s.UploadedLayers = max(s.UploadedLayers, m.UploadedLayers)
		s.PeakRSS = max(s.PeakRSS, m.PeakRSS)
		if l, ok := load1(m.Load); ok {
			if !loaded || l < s.LoadMin {
				s.LoadMin = l
			}
			if !loaded || l > s.LoadMax {
				s.LoadMax = l
			}
			loaded = true
		}
		if m.UpToDate {
			s.UpToDate++
		}
		for _, ph := range m.Phases {
			if _, ok := phases[ph.Name]; !ok {
				order = append(order, ph.Name)
				within[ph.Name] = ph.Within
			}
			phases[ph.Name] = append(phases[ph.Name], ph.Duration)
		}
	}
	s.Wall, s.Push = Median(walls), Median(pushes)
	s.Min, s.Max = slices.Min(walls), slices.Max(walls)
	s.Uploaded, s.Downloaded = Median(up), Median(down)
	s.ModuleSync, s.ImagePull = Median(sync), Median(pull)
	for _, name := range order {
		// A phase missing from a run counts as 0 there.
		ds := phases[name]
		for len(ds) < len(g) {
			ds = append(ds, 0)
		}
		s.Phases = append(s.Phases, Phase{Name: name, Duration: Median(ds), Within: within[name]})
	}
	return s
}

// Targets the issue sets, to reach rather than to assert.
const (
	NoOpMaxWall        = time.Second
	IncrementalMaxRate = 1.2
	ColdMaxRate        = 1.05
	AssembleMax        = 2 * time.Second
	PeakRSSMax         = 150_000_000 // bytes: 150 MB
)

// The targets that span scenarios, by Verdict.Name.
const (
	TargetModuleCache = "module cache"
	TargetAssembly    = "assembly"
	TargetMemory      = "memory"
)

// Judge compares sailmaker with the floor and the plain path per scenario,
// then judges the targets that span scenarios.
func Judge(sums []Summary) []Verdict {
	by := map[Scenario]map[Path]Summary{}
	for _, s := range sums {
		if by[s.Scenario] == nil {
			by[s.Scenario] = map[Path]Summary{}
		}
		by[s.Scenario][s.Path] = s
	}
	var out []Verdict
	for _, sc := range Scenarios {
		ps, ok := by[sc]
		if !ok {
			continue
		}
		v := Verdict{Name: string(sc), Scenario: sc}
		sm, haveSM := ps[Sailmaker]
		fl, haveFloor := ps[Floor]
		if pl, ok := ps[Plain]; ok && haveSM {
			v.VsPlain = Ratio(sm.Wall, pl.Wall)
		}
		if haveSM && haveFloor {
			v.VsFloor = Ratio(sm.Wall, fl.Wall)
		}
		met := func(b bool) { v.Met = &b }
		switch sc {
		case FirstTime:
			v.Target = "reported on its own: paid once per go.sum"
			if haveSM {
				v.Note = firstTimeNote(sm)
			}
		case NoOp:
			v.Target = fmt.Sprintf("under %s end to end, 0 bytes pushed", fmtDuration(NoOpMaxWall))
			if haveSM {
				met(sm.Wall < NoOpMaxWall && sm.Uploaded == 0)
				v.Note = fmt.Sprintf("%s, %s pushed", fmtDuration(sm.Wall), output.Bytes(sm.Uploaded))
			}
		case Incremental:
			v.Target = fmt.Sprintf("within %.2gx of the floor", IncrementalMaxRate)
			if haveSM && haveFloor {
				met(v.VsFloor <= IncrementalMaxRate)
				v.Note = rateNote(v.VsFloor, IncrementalMaxRate)
			}
		case Cold:
			v.Target = fmt.Sprintf("within %.3gx of the floor (first-time costs apart)", ColdMaxRate)
			if haveSM && haveFloor {
				met(v.VsFloor <= ColdMaxRate)
				v.Note = rateNote(v.VsFloor, ColdMaxRate)
			}
		case BaseBump:
			v.Target = "binary layers reused, not uploaded again"
			if haveSM {
				met(sm.UploadedLayers == 0)
				v.Note = fmt.Sprintf("%d layers uploaded, %s pushed", sm.UploadedLayers, output.Bytes(sm.Uploaded))
			}
		}
		out = append(out, v)
	}
	return append(out, judgeAcross(by)...)
}

// judgeAcross judges the targets over sailmaker's runs in every scenario:
// the module cache moved on a changed recipe with the same go.sum
// (incremental, base bump), assembly, and peak memory.
func judgeAcross(by map[Scenario]map[Path]Summary) []Verdict {
	var out []Verdict
	met := func(v *Verdict, b bool) { v.Met = &b }

	mc := Verdict{Name: TargetModuleCache, Target: "0 bytes of module cache content moved on a changed recipe with the same go.sum"}
	var synced, content int64
	var seen []string
	for _, sc := range []Scenario{Incremental, BaseBump} {
		if s, ok := by[sc][Sailmaker]; ok {
			synced = max(synced, s.ModuleSync)
			content = max(content, s.ModuleContent)
			seen = append(seen, string(sc))
		}
	}
	// Nothing received at all (the module cache is a layer BuildKit
	// holds) meets it as well as metadata only did.
	if len(seen) > 0 {
		met(&mc, content == 0)
		mc.Note = fmt.Sprintf("%s: %s received, %s of it file content", strings.Join(seen, ", "), output.Bytes(synced), output.Bytes(content))
		out = append(out, mc)
	}

	// sailmaker's assemble timing includes validating the images (running
	// their programs in BuildKit): the target is on the assembly itself,
	// its "images" part (validation runs beside it), or, in results from
	// before sailmaker logged it, assemble less validate.
	as := Verdict{Name: TargetAssembly, Target: fmt.Sprintf("both images assembled in under %s (validation apart)", fmtDuration(AssembleMax))}
	var worst time.Duration
	var worstIn Scenario
	for _, sc := range []Scenario{FirstTime, Cold, Incremental, BaseBump} {
		s, ok := by[sc][Sailmaker]
		if !ok || s.UpToDate == s.Runs {
			continue
		}
		var assemble, validate, images time.Duration
		found, alone := false, false
		for _, p := range s.Phases {
			switch p.Name {
			case "assemble":
				assemble, found = p.Duration, true
			case "validate":
				validate = p.Duration
			case "images":
				images, alone = p.Duration, p.Duration > 0
			}
		}
		d := max(0, assemble-validate)
		if alone {
			d = images
		}
		if found && (worstIn == "" || d > worst) {
			worst, worstIn = d, sc
		}
	}
	if worstIn != "" {
		met(&as, worst < AssembleMax)
		as.Note = fmt.Sprintf("%s at most (median, %s)", fmtDuration(worst), worstIn)
		out = append(out, as)
	}

	mem := Verdict{Name: TargetMemory, Target: fmt.Sprintf("sailmaker's peak RSS under %d MB", PeakRSSMax/1_000_000)}
	var peak int64
	var peakIn Scenario
	for _, sc := range Scenarios {
		if s, ok := by[sc][Sailmaker]; ok && s.PeakRSS > peak {
			peak, peakIn = s.PeakRSS, sc
		}
	}
	if peak > 0 {
		met(&mem, peak < PeakRSSMax)
		mem.Note = fmt.Sprintf("%s at most (%s)", output.Bytes(peak), peakIn)
		out = append(out, mem)
	}
	return out
}

// firstTimeNote names the first-time costs in a first-time run.
func firstTimeNote(s Summary) string {
	var parts []string
	for _, p := range s.Phases {
		switch p.Name {
		case "module download":
			parts = append(parts, "module download "+fmtDuration(p.Duration))
		case "module sync":
			parts = append(parts, fmt.Sprintf("module sync %s (%s)", fmtDuration(p.Duration), output.Bytes(s.ModuleSync)))
		case "builder pull":
			parts = append(parts, fmt.Sprintf("builder pull %s (%s)", fmtDuration(p.Duration), output.Bytes(s.ImagePull)))
		}
	}
	return strings.Join(parts, ", ")
}

func rateNote(rate, target float64) string {
	if rate <= target {
		return fmt.Sprintf("%.2fx", rate)
	}
	return fmt.Sprintf("%.2fx: missed by %.0f%%", rate, (rate/target-1)*100)
}

// sortMeasurements orders measurements by scenario, run and path.
func sortMeasurements(ms []Measurement) {
	idx := func(sc Scenario) int { return slices.Index(Scenarios, sc) }
	pidx := func(p Path) int { return slices.Index(Paths, p) }
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.Scenario != b.Scenario {
			return idx(a.Scenario) < idx(b.Scenario)
		}
		if a.Run != b.Run {
			return a.Run < b.Run
		}
		return pidx(a.Path) < pidx(b.Path)
	})
}
