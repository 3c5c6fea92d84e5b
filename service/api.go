package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/store"
)

// Access levels of routes besides the roles.
const (
	accessPublic    = "public"    // anyone: health, readiness, metrics
	accessSignature = "signature" // the webhook: an HMAC signature of the body
)

// route is one endpoint: its method and path pattern (net/http ServeMux
// syntax), who may call it and its handler.
type route struct {
	Method, Pattern string
	Access          string
	handler         func(http.ResponseWriter, *http.Request, *principal)
}

// Route is an endpoint the service serves, for documentation checks.
type Route struct{ Method, Pattern, Access string }

// Routes lists the endpoints this service serves.
func (s *Service) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, r := range s.routes {
		out[i] = Route{r.Method, r.Pattern, r.Access}
	}
	return out
}

// Handler is the service's HTTP API.
func (s *Service) Handler() http.Handler { return s.handler }

func (s *Service) routesHandler() http.Handler {
	s.routes = []route{
		{"GET", "/healthz", accessPublic, s.healthz},
		{"GET", "/readyz", accessPublic, s.readyz},
		{"GET", "/metrics", accessPublic, s.metricsHandler},
		{"POST", "/v1/builds", config.RoleMaintainer, s.submitHandler},
		{"GET", "/v1/builds", config.RoleAuditor, s.listHandler},
		{"GET", "/v1/builds/{id}", config.RoleAuditor, s.getHandler},
		{"GET", "/v1/builds/{id}/log", config.RoleAuditor, s.logHandler},
		{"POST", "/v1/builds/{id}/cancel", config.RoleMaintainer, s.cancelHandler},
		{"POST", "/v1/hooks/upstream-tag", accessSignature, s.webhookHandler},
		{"GET", "/v1/workers", config.RoleAuditor, s.workersHandler},
		{"POST", "/v1/workers/{name}/drain", config.RoleAdmin, s.drainHandler},
	}
	if s.audit != nil {
		s.routes = append(s.routes, route{"GET", "/v1/audit/{query...}", config.RoleAuditor, func(w http.ResponseWriter, r *http.Request, _ *principal) {
			s.audit.ServeHTTP(w, r)
		}})
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		mux.Handle(rt.Method+" "+rt.Pattern, s.guard(rt))
	}
	s.mux = mux
	return s.recoverer(s.bodyDeadline(s.accessLog(s.withWeb(s.jsonFallback(mux)))))
}

type ctxKey int

const principalKey ctxKey = 0

// guard checks a route's access before its handler runs.
func (s *Service) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p *principal
		switch rt.Access {
		case accessPublic, accessSignature:
		default:
			var ok bool
			if p, ok = s.auth.authenticate(r); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sailmaker"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)")
				return
			}
			RecordActor(w, p.Name)
			if !allows(p.Role, rt.Access) {
				writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("the %s role may not do this; it needs %s", p.Role, rt.Access))
				return
			}
		}
		rt.handler(w, r, p)
	})
}

// routeOf labels a request for the metrics: its route's pattern, web for
// the pages, unmatched when nothing serves it.
func (s *Service) routeOf(r *http.Request) string {
	p := r.URL.Path
	if s.web != nil && !(p == "/v1" || strings.HasPrefix(p, "/v1/") || p == "/healthz" || p == "/readyz" || p == "/metrics") {
		return "web"
	}
	if _, pattern := s.mux.Handler(r); pattern != "" {
		_, path, _ := strings.Cut(pattern, " ")
		return path
	}
	return "unmatched"
}

// apiError is the body of every error response:
// {"error": {"code": "...", "message": "...", "details": [...]}}.
type apiError struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []string `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string, details ...string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: msg, Details: details}})
}

// recoverer turns a panic in a handler into a 500 with a JSON body, logged.
func (s *Service) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "panic": p}).Error("handler panicked")
				writeError(w, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and the actor for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	actor  string
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// accessLog logs each request: method, path (never the query or headers,
// so never a token), status, time taken and the token's name.
func (s *Service) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		took := time.Since(start)
		// What a client chose is logged cut short: a 10 KB method or a
		// long path must not make long log lines.
		f := logrus.Fields{"method": clip(r.Method, 16), "path": clip(r.URL.Path, 256), "status": rec.status, "duration": took.Round(time.Millisecond).String()}
		if rec.actor != "" {
			f["actor"] = rec.actor
		}
		s.metrics.request(methodLabel(r.Method), s.routeOf(r), rec.status, took)
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			s.log.WithFields(f).Debug("request")
			return
		}
		s.log.WithFields(f).Info("request")
	})
}

// clip cuts s to n bytes, saying so.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", strings.ToValidUTF8(s[:n], ""), len(s))
}

// jsonFallback answers what no route matches (404, 405) with a JSON error
// instead of ServeMux's plain text.
func (s *Service) jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		switch probe.status {
		case http.StatusMethodNotAllowed:
			writeError(w, probe.status, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s (allowed: %s)", clip(r.Method, 16), clip(r.URL.Path, 256), probe.header.Get("Allow")))
		case http.StatusNotFound, 0:
			writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+clip(r.URL.Path, 256)+" (see api/openapi.yaml)")
		default:
			// A redirect to the cleaned path.
			if loc := probe.header.Get("Location"); loc != "" {
				w.Header().Set("Location", loc)
			}
			writeError(w, probe.status, "redirect", http.StatusText(probe.status))
		}
	})
}

// headerProbe records what ServeMux's own handlers would answer.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(code int)        { p.status = code }

// decodeJSON reads a JSON body into v: at most MaxBodyBytes, no unknown
// fields, one value. The error is ready to send.
func (s *Service) decodeJSON(w http.ResponseWriter, r *http.Request, v any) (int, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
			return http.StatusUnsupportedMediaType, &apiError{Code: "unsupported_media_type", Message: fmt.Sprintf("the body must be JSON (Content-Type: application/json), not %s", ct)}
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.srv.MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("more than one JSON value")
			var mbe *http.MaxBytesError
			if errors.As(terr, &mbe) {
				err = terr
			}
		}
	}
	if err == nil {
		return 0, nil
	}
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, &apiError{Code: "too_large", Message: fmt.Sprintf("the body is larger than %d bytes (server.maxBodyBytes)", mbe.Limit)}
	case isTimeout(err):
		return http.StatusRequestTimeout, &apiError{Code: "timeout", Message: fmt.Sprintf("the body did not arrive within %s of the headers", s.bodyTimeout)}
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, &apiError{Code: "bad_request", Message: "the body is empty: send a JSON object"}
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, &apiError{Code: "malformed_json", Message: "malformed JSON: " + err.Error()}
	case errors.As(err, &te):
		return http.StatusBadRequest, &apiError{Code: "bad_request", Message: fmt.Sprintf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return http.StatusBadRequest, &apiError{Code: "unknown_field", Message: strings.TrimPrefix(err.Error(), "json: ")}
	default:
		return http.StatusBadRequest, &apiError{Code: "bad_request", Message: err.Error()}
	}
}

func sendAPIError(w http.ResponseWriter, status int, e *apiError) {
	writeJSON(w, status, map[string]*apiError{"error": e})
}

func (s *Service) healthz(w http.ResponseWriter, _ *http.Request, _ *principal) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Service) readyz(w http.ResponseWriter, r *http.Request, _ *principal) {
	checks := map[string]string{}
	ready := true
	for name, check := range s.ready {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		if err := check(ctx); err != nil {
			checks[name] = err.Error()
			ready = false
		} else {
			checks[name] = "ok"
		}
		cancel()
	}
	status, code := "ready", http.StatusOK
	if s.isClosing() {
		status, code, ready = "stopping", http.StatusServiceUnavailable, false
	} else if !ready {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// SubmitRequest is the body of POST /v1/builds.
type SubmitRequest struct {
	// Recipe is a recipe id ("istio@1.24.2") or a recipe document (a JSON
	// object; it cannot name patches).
	Recipe json.RawMessage `json:"recipe"`
	// Force rebuilds even when up to date and moves tags naming other
	// digests (recorded in the ledger).
	Force bool `json:"force,omitempty"`
	// EnvoySHA256 is the Envoy tarball's sha256 when the recipe's is
	// unconfirmed, as `sailmaker build --envoy-sha256`.
	EnvoySHA256 string `json:"envoySHA256,omitempty"`
	// EnvoySHA256ByArch are other architectures' (arm64), as
	// `--envoy-sha256 arm64=<sum>`.
	EnvoySHA256ByArch map[string]string `json:"envoySHA256ByArch,omitempty"`
	// Platforms builds only these of the recipe's platforms, as
	// `sailmaker build --platform`.
	Platforms []string `json:"platforms,omitempty"`
}

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Service) submitHandler(w http.ResponseWriter, r *http.Request, p *principal) {
	var req SubmitRequest
	if code, e := s.decodeJSON(w, r, &req); e != nil {
		sendAPIError(w, code, e)
		return
	}
	raw := strings.TrimSpace(string(req.Recipe))
	if raw == "" || raw == "null" {
		writeError(w, http.StatusBadRequest, "bad_request", `"recipe" is required: a recipe id such as "istio@1.24.2", or a recipe document`)
		return
	}
	if e := checkEnvoySHA256(req.EnvoySHA256); e != nil {
		writeError(w, e.Status, e.Code, e.Message)
		return
	}
	var (
		rec    *recipes.Recipe
		source string
		doc    []byte
		err    error
	)
	switch raw[0] {
	case '"':
		var id string
		if err := json.Unmarshal([]byte(raw), &id); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", `"recipe": `+err.Error())
			return
		}
		rec, source, doc, err = s.recipeByID(id)
	case '{':
		source, doc = SourceInline, []byte(raw)
		rec, err = s.parseInline(doc)
	default:
		writeError(w, http.StatusBadRequest, "bad_request", `"recipe" must be a recipe id (a string) or a recipe document (an object)`)
		return
	}
	if err != nil {
		s.recipeError(w, err)
		return
	}
	for a, sum := range req.EnvoySHA256ByArch {
		if e := checkEnvoySHA256(sum); e != nil {
			writeError(w, e.Status, e.Code, `"envoySHA256ByArch.`+a+`" must be 64 lowercase hex digits`)
			return
		}
	}
	b, created, err := s.Submit(r.Context(), rec, source, doc, SubmitOptions{
		Force:             req.Force,
		EnvoySHA256:       req.EnvoySHA256,
		EnvoySHA256ByArch: req.EnvoySHA256ByArch,
		Platforms:         req.Platforms,
		Trigger:           api.Trigger{Actor: p.Name, Kind: api.TriggerAPI},
	})
	var refused *RequestError
	if errors.As(err, &refused) {
		writeError(w, refused.Status, refused.Code, refused.Message, refused.Details...)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/builds/"+b.ID)
	if created {
		writeJSON(w, http.StatusAccepted, b)
		return
	}
	w.Header().Set("X-Sailmaker-Coalesced", "true")
	writeJSON(w, http.StatusOK, b)
}

// checkInputs refuses a recipe whose source or artifacts are not where the
// service may fetch from (server.inputs), naming each field.
func (s *Service) checkInputs(r *recipes.Recipe) *RequestError {
	var details []string
	if err := s.policy.CheckGit(r.Spec.Source.Git); err != nil {
		details = append(details, "spec.source.git: "+err.Error())
	}
	if e := r.Spec.Inputs.Envoy; e != nil {
		if err := s.policy.CheckArtifact(e.URL); err != nil {
			details = append(details, "spec.inputs.envoy.url: "+err.Error())
		}
	}
	if len(details) == 0 {
		return nil
	}
	return &RequestError{Status: http.StatusUnprocessableEntity, Code: "input_not_allowed",
		Message: "the recipe's inputs are not where this service may fetch from", Details: details}
}

func (s *Service) recipeError(w http.ResponseWriter, err error) {
	e := recipeRequestError(err)
	writeError(w, e.Status, e.Code, e.Message, e.Details...)
}

// checkEnvoySHA256 refuses an Envoy checksum override that is not a sha256.
func checkEnvoySHA256(sum string) *RequestError {
	if sum != "" && !sha256HexRE.MatchString(sum) {
		return &RequestError{Status: http.StatusBadRequest, Code: "bad_request", Message: `"envoySHA256" must be 64 lowercase hex digits`}
	}
	return nil
}

// recipeRequestError is the answer to a recipe that cannot be found or
// does not validate.
func recipeRequestError(err error) *RequestError {
	var ve recipes.ValidationErrors
	switch {
	case errors.Is(err, errUnknownRecipe):
		return &RequestError{Status: http.StatusUnprocessableEntity, Code: "unknown_recipe", Message: err.Error()}
	case errors.As(err, &ve):
		details := make([]string, len(ve))
		for i, e := range ve {
			details[i] = e.Error()
		}
		return &RequestError{Status: http.StatusUnprocessableEntity, Code: "invalid_recipe", Message: fmt.Sprintf("the recipe does not validate (%d problems)", len(ve)), Details: details}
	default:
		return &RequestError{Status: http.StatusUnprocessableEntity, Code: "invalid_recipe", Message: err.Error()}
	}
}

func (s *Service) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.WithError(err).WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path}).Error("request failed")
	writeError(w, http.StatusInternalServerError, "internal", "internal error: "+err.Error())
}

// SubmitOptions are the options of a build request.
type SubmitOptions struct {
	Force       bool
	EnvoySHA256 string
	// EnvoySHA256ByArch and Platforms are as builder.Request's
	// EnvoyByArch (sha256 only) and Platforms.
	EnvoySHA256ByArch map[string]string
	Platforms         []string
	Trigger           api.Trigger
}

// Submit queues a build of r, unless a build of the same recipe with the
// same options is queued or running: then it returns that one, and false.
//
// A recipe that is not embedded must take its inputs from where the
// service allows (server.inputs): otherwise a *RequestError (422).
func (s *Service) Submit(ctx context.Context, r *recipes.Recipe, source string, doc []byte, o SubmitOptions) (*Build, bool, error) {
	if source != SourceEmbedded {
		if err := s.checkInputs(r); err != nil {
			return nil, false, err
		}
	}
	platforms, err := builder.ParsePlatforms(o.Platforms)
	if err != nil {
		return nil, false, &RequestError{Status: http.StatusBadRequest, Code: "bad_request", Message: `"platforms": ` + strings.TrimPrefix(err.Error(), "--platform ")}
	}
	if err := builder.CheckRequest(r, BuildRequest(o.EnvoySHA256, o.EnvoySHA256ByArch, platforms)); err != nil {
		return nil, false, &RequestError{Status: http.StatusUnprocessableEntity, Code: "bad_request", Message: err.Error()}
	}
	now := time.Now()
	b := &Build{
		ID:           newBuildID(now),
		Recipe:       r.ID(),
		RecipeDigest: r.Digest(),
		Source:       source,
		State:        StateQueued,
		Force:        o.Force,
		EnvoySHA256:  o.EnvoySHA256,
		Trigger:      o.Trigger,

		EnvoySHA256ByArch: o.EnvoySHA256ByArch,
		Platforms:         platforms,
		Created:           now,
		Warnings:          r.Warnings(),
	}
	s.queueMu.Lock()
	got, created, err := s.db.insertOrJoin(ctx, b, dedupKey(b.RecipeDigest, b.Force, b.EnvoySHA256)+platformsKey(b.EnvoySHA256ByArch, b.Platforms), doc)
	s.queueMu.Unlock()
	if store.DiskFull(err) {
		s.disk.noteFull("queueing a build", err)
		return nil, false, &RequestError{Status: http.StatusInsufficientStorage, Code: "disk_full",
			Message: fmt.Sprintf("the service's state directory is full: the build cannot be queued (%v); ask its operator to free space there", err)}
	}
	if err != nil {
		return nil, false, err
	}
	f := logrus.Fields{"build": got.ID, "recipe": got.Recipe, "actor": o.Trigger.Actor, "kind": o.Trigger.Kind}
	if created {
		s.metrics.queued()
		s.log.WithFields(f).Info("build queued")
		s.kick()
	} else {
		s.log.WithFields(f).Info("same build already queued or running: joined it")
	}
	return got, created, nil
}

var listParams = map[string]bool{"state": true, "recipe": true, "since": true, "limit": true}

func (s *Service) listHandler(w http.ResponseWriter, r *http.Request, _ *principal) {
	q := r.URL.Query()
	for k := range q {
		if !listParams[k] {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown query parameter %q (state, recipe, since, limit)", k))
			return
		}
	}
	f := ListFilter{Recipe: q.Get("recipe"), Limit: 100}
	for _, v := range q["state"] {
		for _, st := range strings.Split(v, ",") {
			if st = strings.TrimSpace(st); st == "" {
				continue
			}
			if !validState(st) {
				writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown state %q (queued, fetching, building, pushing, succeeded, failed, cancelled)", st))
				return
			}
			f.States = append(f.States, State(st))
		}
	}
	if v := q.Get("since"); v != "" {
		t, err := ParseSince(v, time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be a number from 1 to 1000")
			return
		}
		f.Limit = n
	}
	builds, err := s.db.list(r.Context(), f)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"builds": builds})
}

// ParseSince reads a time (RFC 3339) or a duration back from now ("24h").
func ParseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q: give an RFC 3339 time (2025-01-02T15:04:05Z) or a duration (24h)", v)
}

func (s *Service) getHandler(w http.ResponseWriter, r *http.Request, _ *principal) {
	b, err := s.db.get(r.Context(), r.PathValue("id"))
	if errors.Is(err, errNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no build "+strconv.Quote(r.PathValue("id")))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Service) cancelHandler(w http.ResponseWriter, r *http.Request, p *principal) {
	if r.ContentLength > 0 {
		var empty struct{}
		if code, e := s.decodeJSON(w, r, &empty); e != nil {
			sendAPIError(w, code, e)
			return
		}
	}
	b, err := s.Cancel(r.Context(), r.PathValue("id"), p.Name, 30*time.Second)
	var fe *finalError
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no build "+strconv.Quote(r.PathValue("id")))
	case errors.As(err, &fe):
		writeError(w, http.StatusConflict, "conflict", "cannot cancel: "+fe.Error())
	case err != nil:
		s.internalError(w, r, err)
	case b.CancelledBy != p.Name:
		// Someone else's cancel came first: the build as it left it.
		writeJSON(w, http.StatusOK, b)
	default:
		writeJSON(w, http.StatusAccepted, b)
	}
}
