package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/service"
)

// sinceChoices are the time filter's choices.
var sinceChoices = []struct{ Value, Label string }{
	{"", "any time"}, {"1h", "last hour"}, {"24h", "last 24 hours"}, {"168h", "last 7 days"}, {"720h", "last 30 days"},
}

// buildRow is a build as the list shows it.
type buildRow struct {
	service.Build
	Worker   string
	Duration string
}

type buildsData struct {
	State, Recipe, Since string
	States               []service.State
	SinceChoices         []struct{ Value, Label string }
	Builds               []buildRow
	// Active: something is queued or running, so the list refreshes.
	Active bool
	Error  string
	Limit  int
}

const listLimit = 100

func (h *Handler) buildsPage(w http.ResponseWriter, r request) {
	q := r.URL.Query()
	d := buildsData{State: q.Get("state"), Recipe: strings.TrimSpace(q.Get("recipe")), Since: q.Get("since"),
		States: service.States, SinceChoices: sinceChoices, Limit: listLimit}
	f := service.ListFilter{Recipe: d.Recipe, Limit: listLimit}
	status := http.StatusOK
	switch {
	case d.State == "active":
		f.States = []service.State{service.StateQueued, service.StateFetching, service.StateBuilding, service.StatePushing}
	case d.State != "":
		if !knownState(d.State) {
			status, d.Error = http.StatusBadRequest, fmt.Sprintf("Unknown state %q.", d.State)
		}
		f.States = []service.State{service.State(d.State)}
	}
	if d.Since != "" {
		t, err := service.ParseSince(d.Since, time.Now())
		if err != nil {
			status, d.Error = http.StatusBadRequest, err.Error()
		}
		f.Since = t
	}
	if status == http.StatusOK {
		builds, err := h.svc.Builds(r.Context(), f)
		if err != nil {
			h.internal(w, r, "listing builds", err)
			return
		}
		now := time.Now()
		for _, b := range builds {
			d.Builds = append(d.Builds, buildRow{Build: b, Worker: workerOf(&b), Duration: buildDuration(&b, now)})
			if b.State.Active() {
				d.Active = true
			}
		}
	}
	h.render(w, status, "builds", h.view(r.s, "Builds", "builds", d))
}

func knownState(s string) bool {
	for _, st := range service.States {
		if string(st) == s {
			return true
		}
	}
	return false
}

// workerOf is the worker a build ran on, once builds record one (the
// build's JSON field "worker": a name, or an object with a name or id).
func workerOf(b *service.Build) string {
	data, err := json.Marshal(b)
	if err != nil {
		return ""
	}
	return workerFromJSON(data)
}

func workerFromJSON(data []byte) string {
	var doc struct {
		Worker json.RawMessage `json:"worker"`
	}
	if json.Unmarshal(data, &doc) != nil || len(doc.Worker) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(doc.Worker, &s) == nil {
		return s
	}
	var o map[string]any
	if json.Unmarshal(doc.Worker, &o) == nil {
		for _, k := range []string{"name", "id"} {
			if v, ok := o[k].(string); ok {
				return v
			}
		}
	}
	return ""
}

// buildDuration is how long a build ran (or has been running), or has
// been queued.
func buildDuration(b *service.Build, now time.Time) string {
	switch {
	case b.Started != nil && b.Finished != nil:
		return fmtDuration(b.Finished.Sub(*b.Started))
	case b.Started != nil:
		return fmtDuration(now.Sub(*b.Started))
	case b.State == service.StateQueued:
		return "queued " + fmtDuration(now.Sub(b.Created))
	}
	return ""
}

// phaseRow is one phase of a build's last attempt.
type phaseRow struct {
	Phase    service.State
	Started  time.Time
	Duration string
}

type buildData struct {
	Build    *service.Build
	Worker   string
	Duration string
	Phases   []phaseRow
	Joined   bool
	Active   bool
	Final    bool
}

func (h *Handler) buildPage(w http.ResponseWriter, r request) {
	b, err := h.svc.Build(r.Context(), r.PathValue("id"))
	if errors.Is(err, service.ErrNotFound) {
		h.errorPage(w, r.Request, r.s, http.StatusNotFound, fmt.Sprintf("There is no build %q.", r.PathValue("id")))
		return
	}
	if err != nil {
		h.internal(w, r, "reading a build", err)
		return
	}
	now := time.Now()
	d := buildData{Build: b, Worker: workerOf(b), Duration: buildDuration(b, now), Phases: phases(b, now),
		Joined: r.URL.Query().Get("joined") == "1", Active: b.State.Active(), Final: b.State.Final()}
	h.render(w, http.StatusOK, "build", h.view(r.s, "Build "+b.ID, "builds", d))
}

// phases are the phases of a build's last attempt in order, each with how
// long it took (until the next, the end, or now).
func phases(b *service.Build, now time.Time) []phaseRow {
	var rows []phaseRow
	for _, st := range []service.State{service.StateFetching, service.StateBuilding, service.StatePushing} {
		if t, ok := b.Phases[st]; ok {
			rows = append(rows, phaseRow{Phase: st, Started: t})
		}
	}
	for i := range rows {
		end := now
		switch {
		case i+1 < len(rows):
			end = rows[i+1].Started
		case b.Finished != nil:
			end = *b.Finished
		case !b.State.Running():
			continue
		}
		rows[i].Duration = fmtDuration(end.Sub(rows[i].Started))
	}
	return rows
}

// buildLog streams the build's log as the API does.
func (h *Handler) buildLog(w http.ResponseWriter, r request) {
	h.svc.ServeBuildLog(w, r.Request)
}

func (h *Handler) cancel(w http.ResponseWriter, r request) {
	id := r.PathValue("id")
	_, err := h.svc.Cancel(r.Context(), id, r.user().Name, 30*time.Second)
	switch {
	case errors.Is(err, service.ErrNotFound):
		h.errorPage(w, r.Request, r.s, http.StatusNotFound, fmt.Sprintf("There is no build %q.", id))
	case errors.Is(err, service.ErrFinal):
		h.errorPage(w, r.Request, r.s, http.StatusConflict, "The build cannot be cancelled: "+err.Error()+".")
	case err != nil:
		h.internal(w, r, "cancelling a build", err)
	default:
		http.Redirect(w, r.Request, "/builds/"+url.PathEscape(id), http.StatusSeeOther)
	}
}

// TriggerKind is the trigger kind of builds queued from the pages.
const TriggerKind = "web"

type recipeChoice struct {
	ID, Description string
}

type triggerData struct {
	Embedded []recipeChoice
	Stored   []recipeChoice
	Recipe   string
	Force    bool
	Envoy    string
	Error    string
	Details  []string
}

func (h *Handler) triggerData(r request) (triggerData, error) {
	var d triggerData
	for _, e := range recipes.List() {
		if e.Kind == recipes.KindRecipe && !strings.HasPrefix(e.Description, "invalid:") {
			d.Embedded = append(d.Embedded, recipeChoice{ID: e.ID, Description: e.Description})
		}
	}
	stored, err := h.svc.StoredRecipes()
	if err != nil {
		return d, err
	}
	for _, id := range stored {
		d.Stored = append(d.Stored, recipeChoice{ID: id})
	}
	d.Recipe = r.URL.Query().Get("recipe")
	return d, nil
}

func (h *Handler) triggerPage(w http.ResponseWriter, r request) {
	d, err := h.triggerData(r)
	if err != nil {
		h.internal(w, r, "listing the stored recipes", err)
		return
	}
	h.render(w, http.StatusOK, "trigger", h.view(r.s, "Queue a build", "trigger", d))
}

// trigger queues a build as POST /v1/builds does with a recipe id, the
// web session's name as the actor.
func (h *Handler) trigger(w http.ResponseWriter, r request) {
	d, err := h.triggerData(r)
	if err != nil {
		h.internal(w, r, "listing the stored recipes", err)
		return
	}
	d.Recipe = strings.TrimSpace(r.PostForm.Get("recipe"))
	d.Force = r.PostForm.Get("force") != ""
	d.Envoy = strings.ToLower(strings.TrimSpace(r.PostForm.Get("envoySHA256")))
	if d.Recipe == "" {
		d.Error = "Pick a recipe."
		h.render(w, http.StatusBadRequest, "trigger", h.view(r.s, "Queue a build", "trigger", d))
		return
	}
	opts := service.SubmitOptions{Force: d.Force, EnvoySHA256: d.Envoy}
	opts.Trigger.Actor, opts.Trigger.Kind = r.user().Name, TriggerKind
	b, created, err := h.svc.SubmitRecipeID(r.Context(), d.Recipe, opts)
	var re *service.RequestError
	if errors.As(err, &re) {
		d.Error, d.Details = re.Message, re.Details
		h.render(w, re.Status, "trigger", h.view(r.s, "Queue a build", "trigger", d))
		return
	}
	if err != nil {
		h.internal(w, r, "queueing a build", err)
		return
	}
	to := "/builds/" + url.PathEscape(b.ID)
	if !created {
		to += "?joined=1"
	}
	http.Redirect(w, r.Request, to, http.StatusSeeOther)
}

func (h *Handler) internal(w http.ResponseWriter, r request, what string, err error) {
	h.log.WithError(err).WithFields(logrus.Fields{"path": r.URL.Path}).Error("web: " + what)
	h.errorPage(w, r.Request, r.s, http.StatusInternalServerError, "Something went wrong "+what+": "+err.Error())
}
