package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sailmaker/sailmaker/internal/output"
)

// Results are everything a benchmark run measured; results.json holds
// them. Durations are nanoseconds, sizes bytes.
type Results struct {
	Started      time.Time     `json:"started"`
	Finished     time.Time     `json:"finished,omitzero"`
	Machine      Machine       `json:"machine"`
	Settings     Settings      `json:"settings"`
	Measurements []Measurement `json:"measurements"`
	Summaries    []Summary     `json:"summaries"`
	// ModuleCache is the Go module cache every path builds with.
	ModuleCache ModuleCache `json:"moduleCache"`
	Verdicts    []Verdict   `json:"verdicts"`
	// Error is why the run stopped early, if it did.
	Error string `json:"error,omitempty"`
}

// Settings say what was run.
type Settings struct {
	Recipe    string     `json:"recipe"`
	Source    string     `json:"source"`
	Commit    string     `json:"commit"`
	Scenarios []Scenario `json:"scenarios"`
	Paths     []Path     `json:"paths"`
	Runs      int        `json:"runs"`
	ColdRuns  int        `json:"coldRuns"`
	// Registry is the benchmark's own registry (removed at the end),
	// UserRegistry the one the builder and base images were copied from.
	Registry     string `json:"registry"`
	UserRegistry string `json:"userRegistry"`
	// Sandbox is the temporary folder of the benchmark's registry and
	// state (removed at the end).
	Sandbox  string `json:"sandbox"`
	Proxy    string `json:"proxy"`
	BuildKit string `json:"buildkit"`
	RunID    string `json:"runId"`
	Out      string `json:"out"`
}

// update recomputes the summaries and verdicts from the measurements.
func (r *Results) update() {
	sortMeasurements(r.Measurements)
	r.Summaries = Summarize(r.Measurements)
	r.Verdicts = Judge(r.Summaries)
}

// WriteJSON writes r to path through a temporary file.
func (r *Results) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Clean(path))
}

// ReadResults reads a results.json.
func ReadResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Results{}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// WriteTable writes the results as Markdown tables (aligned, so they read
// as well in a terminal): the machine, one row per scenario and path, and
// one row per scenario comparing sailmaker with the others.
func (r *Results) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "Machine: %s; %d cores, %s RAM; %s. Load average %s at the start, %s at the end.\n",
		m.CPU, m.Cores, output.Bytes(m.Memory), m.Kernel, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "Recipe %s (%s); %s; %s.\n\n",
		r.Settings.Recipe, r.Settings.Source, r.Started.UTC().Format("2006-01-02 15:04 MST"), runsNote(r.Settings))

	rows := [][]string{{"scenario", "path", "runs", "wall (median)", "range", "uploaded", "layers up", "pulled", "module sync", "load", "phases (median)"}}
	for _, s := range r.Summaries {
		rng := "-"
		if s.Runs > 1 {
			rng = fmtDuration(s.Min) + " – " + fmtDuration(s.Max)
		}
		sync := "-"
		if s.ModuleSync > 0 {
			sync = output.Bytes(s.ModuleSync)
		}
		rows = append(rows, []string{string(s.Scenario), string(s.Path), fmt.Sprint(s.Runs), fmtDuration(s.Wall), rng,
			output.Bytes(s.Uploaded), fmt.Sprint(s.UploadedLayers), output.Bytes(s.Downloaded), sync, fmtLoad(s), fmtPhases(s.Phases)})
	}
	writeMarkdown(w, rows)
	fmt.Fprintln(w)

	peak := map[Scenario]int64{}
	for _, s := range r.Summaries {
		if s.Path == Sailmaker {
			peak[s.Scenario] = s.PeakRSS
		}
	}
	rows = [][]string{{"target", "sailmaker/floor", "sailmaker/plain", "goal", "result", "sailmaker peak RSS"}}
	for _, v := range r.Verdicts {
		res := "-"
		if v.Met != nil {
			res = "missed"
			if *v.Met {
				res = "met"
			}
			if v.Note != "" {
				res += " (" + v.Note + ")"
			}
		} else if v.Note != "" {
			res = v.Note
		}
		rss := "-"
		if p := peak[v.Scenario]; p > 0 && v.Scenario != "" {
			rss = output.Bytes(p)
		}
		rows = append(rows, []string{v.Name, fmtRatio(v.VsFloor), fmtRatio(v.VsPlain), v.Target, res, rss})
	}
	writeMarkdown(w, rows)
	if mc := r.ModuleCache; mc.Files > 0 {
		fmt.Fprintf(w, "\nModule cache: %d files, %s; BuildKit receives %s of metadata for it when its snapshot has every file (anything more is file content).\n",
			mc.Files, output.Bytes(mc.Size), output.Bytes(mc.Metadata))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "\nThe run stopped early: %s\n", r.Error)
	}
	return nil
}

// fmtPhases writes phases as "a 1 s · b 2 s (c 0.5 s, d 1 s) · e 3 s": the
// parts of a phase (Within it) in brackets after it.
func fmtPhases(phases []Phase) string {
	var out []string
	for _, p := range phases {
		if p.Within != "" {
			continue
		}
		s := p.Name + " " + fmtDuration(p.Duration)
		var parts []string
		for _, q := range phases {
			if q.Within == p.Name {
				parts = append(parts, q.Name+" "+fmtDuration(q.Duration))
			}
		}
		if len(parts) > 0 {
			s += " (" + strings.Join(parts, ", ") + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " · ")
}

func runsNote(s Settings) string {
	plural := func(n int) string {
		if n == 1 {
			return "1 run"
		}
		return fmt.Sprintf("%d runs", n)
	}
	cold, warm, first := false, false, false
	for _, sc := range s.Scenarios {
		switch sc {
		case Cold:
			cold = true
		case FirstTime:
			first = true
		default:
			warm = true
		}
	}
	var out string
	switch {
	case cold && warm:
		out = fmt.Sprintf("medians of %s (cold: %s)", plural(s.Runs), plural(s.ColdRuns))
	case cold:
		out = "medians of " + plural(s.ColdRuns)
	case warm:
		out = "medians of " + plural(s.Runs)
	}
	if first {
		if out != "" {
			out += "; "
		}
		out += "first-time: 1 run"
	}
	return out
}

// writeMarkdown writes rows (the first is the header) as a pipe table with
// padded columns.
func writeMarkdown(w io.Writer, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c), 3)
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(rows[0])
	sep := make([]string, len(widths))
	for i, n := range widths {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

// fmtDuration is a duration for people: 0.42 s, 12.3 s, 2 m 05 s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d < 100*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	default:
		d = d.Round(time.Second)
		return fmt.Sprintf("%d m %02d s", int(d.Minutes()), int(d.Seconds())%60)
	}
}

// fmtLoad is the 1-minute load average at the start of a summary's runs:
// one number, or the lowest and highest.
func fmtLoad(s Summary) string {
	switch {
	case s.LoadMin == 0 && s.LoadMax == 0:
		return "-"
	case s.LoadMin == s.LoadMax:
		return fmt.Sprintf("%.2f", s.LoadMax)
	}
	return fmt.Sprintf("%.2f – %.2f", s.LoadMin, s.LoadMax)
}
