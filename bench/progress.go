package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/sailmaker/sailmaker/builder"
)

// solveStats is what BuildKit's progress (`--progress rawjson`: one
// client.SolveStatus per line) tells about a build, the same way for
// sailmaker and the plain path.
type solveStats struct {
	// Make is the exec step that runs upstream's make (from its start to
	// its end, container start-up included).
	Make window
	// MakeRan: BuildKit ran the make step rather than reusing a cached
	// result of it.
	MakeRan bool
	// ModuleSync is the transfer of the Go module cache into BuildKit
	// (the local source named by moduleLocal) and ModuleSyncBytes what
	// BuildKit received for it: every file's metadata, and the content of
	// files its snapshot lacked.
	// For sailmaker, whose module cache is an image layer in its input
	// layer store, it is the step loading that layer (builder's
	// ModuleCacheVertex) and the layer bytes BuildKit read: none when it
	// has the layer.
	ModuleSync      window
	ModuleSyncBytes int64
	// Pull is BuildKit downloading and unpacking image layers (the
	// builder image, and for the plain path the base), PullBytes the
	// bytes downloaded.
	Pull      window
	PullBytes int64
	// Export is the image export (which includes the push), Push the push
	// itself (the plain path).
	Export, Push window
	// Digest is the pushed image's digest (buildctl's metadata file).
	Digest string
	// Failure is the failed step's error and last output, if any.
	Failure string
	// Validate is how long sailmaker took to validate the images (run
	// their programs in BuildKit), from its log line "validated: ..."
	// (took=...); sailmaker counts it in its assemble timing.
	Validate time.Duration
	// Assembly is how long sailmaker took to lay out the images and
	// packages, from its log line "assembled: ..." (took=...); validation
	// runs beside it, and sailmaker's assemble timing lasts until both
	// are done.
	Assembly time.Duration
}

// assembledRE finds the duration in sailmaker's "assembled" log line.
var assembledRE = regexp.MustCompile(`msg="assembled: .* took=([0-9.]+[a-zµ]+)`)

// validatedRE finds the duration in sailmaker's "validated" log line.
var validatedRE = regexp.MustCompile(`msg="validated: .* took=([0-9.]+[a-zµ]+)`)

// isValidationLoad tells a step of sailmaker's validation that gives it
// an image's base (builder.ValidationBaseVertex): validation is timed on
// its own, so its pulls are not the builder image's.
func isValidationLoad(name string) bool {
	return strings.HasPrefix(name, builder.ValidationBaseVertex)
}

// buildctlRun is what one buildctl build showed.
type buildctlRun = solveStats

type window struct{ Start, End time.Time }

func (w window) empty() bool { return w.Start.IsZero() || w.End.IsZero() }
func (w window) duration() time.Duration {
	if w.empty() {
		return 0
	}
	return w.End.Sub(w.Start)
}

// widen makes w cover [s, e].
func (w *window) widen(s, e *time.Time) {
	if s != nil && !s.IsZero() && (w.Start.IsZero() || s.Before(w.Start)) {
		w.Start = *s
	}
	if e != nil && !e.IsZero() && e.After(w.End) {
		w.End = *e
	}
}

// union is the smallest window covering both (an empty one adds nothing).
func union(a, b window) window {
	if a.empty() {
		return b
	}
	if b.empty() {
		return a
	}
	a.widen(&b.Start, &b.End)
	return a
}

// isMakeStep tells the exec step that runs upstream's make: sailmaker's
// ("make <targets> (no network)") and the plain Dockerfile's RUN (its name
// has MAKE_ARGS expanded: "[build 4/4] RUN --network=none ... make VERSION=...").
func isMakeStep(name string) bool {
	return strings.HasPrefix(name, "make ") || (strings.Contains(name, "] RUN ") && strings.Contains(name, " make "))
}

// parseProgress reads BuildKit's rawjson progress. Lines that are not
// progress (sailmaker's log lines, buildctl's own error) are skipped.
// moduleLocal names the local source holding the module cache
// ("gomodcache" for sailmaker, "gomod" for the plain Dockerfile).
func parseProgress(r io.Reader, moduleLocal string) (solveStats, error) {
	var out solveStats
	logs := map[string]*bytes.Buffer{}
	pulled := map[string]int64{}
	modLayers := map[string]int64{}
	names := map[string]string{}
	var failed []string
	syncID := "transferring " + moduleLocal + ":"
	br := bufio.NewReader(r)
	var err error
	for {
		line, rerr := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 && line[0] == '{' {
			var s client.SolveStatus
			if jerr := json.Unmarshal(line, &s); jerr == nil {
				out.add(&s, syncID, names, logs, pulled, modLayers, &failed)
			}
		} else if m := validatedRE.FindSubmatch(line); m != nil {
			if d, derr := time.ParseDuration(string(m[1])); derr == nil {
				out.Validate += d
			}
		} else if m := assembledRE.FindSubmatch(line); m != nil {
			if d, derr := time.ParseDuration(string(m[1])); derr == nil {
				out.Assembly += d
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				err = fmt.Errorf("reading BuildKit's progress: %w", rerr)
			}
			break
		}
	}
	for _, n := range pulled {
		out.PullBytes += n
	}
	for _, n := range modLayers {
		out.ModuleSyncBytes += n
	}
	out.Failure = strings.Join(failed, "\n")
	return out, err
}

func (out *solveStats) add(s *client.SolveStatus, syncID string, names map[string]string, logs map[string]*bytes.Buffer, pulled, modLayers map[string]int64, failed *[]string) {
	for _, v := range s.Vertexes {
		names[v.Digest.String()] = v.Name
		switch {
		case strings.HasPrefix(v.Name, builder.ModuleCacheVertex):
			out.ModuleSync.widen(v.Started, v.Completed)
		case strings.HasPrefix(v.Name, "exporting to "):
			out.Export.widen(v.Started, v.Completed)
		case isMakeStep(v.Name):
			out.Make.widen(v.Started, v.Completed)
			if v.Completed != nil && !v.Cached && v.Error == "" {
				out.MakeRan = true
			}
		}
		if v.Error != "" && !strings.Contains(v.Error, "context canceled") {
			*failed = append(*failed, fmt.Sprintf("%s: %s", v.Name, v.Error))
			if b := logs[v.Digest.String()]; b != nil {
				*failed = append(*failed, strings.TrimSpace(tailString(b.String(), 2000)))
			}
		}
	}
	for _, st := range s.Statuses {
		switch {
		case strings.HasPrefix(st.ID, "pushing "):
			out.Push.widen(st.Started, st.Completed)
		case strings.HasPrefix(st.ID, "exporting "):
			out.Export.widen(st.Started, st.Completed)
		case st.ID == syncID:
			out.ModuleSync.widen(st.Started, st.Completed)
			out.ModuleSyncBytes = max(out.ModuleSyncBytes, st.Current)
		case strings.HasPrefix(names[st.Vertex.String()], builder.ModuleCacheVertex):
			out.ModuleSync.widen(st.Started, st.Completed)
			if strings.HasPrefix(st.ID, "sha256:") {
				modLayers[st.ID] = max(modLayers[st.ID], st.Current)
			}
		case isValidationLoad(names[st.Vertex.String()]) || strings.HasPrefix(names[st.Vertex.String()], builder.SourceVertex):
			// Validation (timed on its own), the source: not a pull.
		case strings.HasPrefix(st.ID, "sha256:"):
			// A layer being downloaded: Current counts its bytes.
			out.Pull.widen(st.Started, st.Completed)
			pulled[st.ID] = max(pulled[st.ID], st.Current)
		case strings.HasPrefix(st.ID, "extracting sha256:"):
			out.Pull.widen(st.Started, st.Completed)
		}
	}
	for _, l := range s.Logs {
		b := logs[l.Vertex.String()]
		if b == nil {
			b = &bytes.Buffer{}
			logs[l.Vertex.String()] = b
		}
		b.Write(l.Data)
	}
}

// solvePhases are the parts of the solve BuildKit's progress names, as
// phases within the solve: module sync, image pull, make.
func (s solveStats) solvePhases(pull string) []Phase {
	return []Phase{
		{Name: "module sync", Duration: s.ModuleSync.duration(), Within: "solve"},
		{Name: pull, Duration: s.Pull.duration(), Within: "solve"},
		{Name: "make", Duration: s.Make.duration(), Within: "solve"},
	}
}
