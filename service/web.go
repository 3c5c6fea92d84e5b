package service

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sort"
	"strings"
)

// What the web pages (package web, mounted with Options.WebHandler) use of
// the service: the same authentication, roles and build operations as the
// API, so that a page does nothing the API would not.

// Principal is who a caller acts as: a token's name and role, or
// "anonymous" admin on an open service (no tokens, loopback only).
type Principal struct {
	Name string
	Role string
}

// AuthenticateToken finds the configured token a caller gave, as a bearer
// token is checked (sha256, constant time); on an open service every caller
// is the anonymous admin.
func (s *Service) AuthenticateToken(token string) (Principal, bool) {
	p, ok := s.auth.byToken(token)
	if !ok {
		return Principal{}, false
	}
	return Principal{Name: p.Name, Role: p.Role}, true
}

// Allows says whether role may do what needs (a role) requires, as the API
// decides: admin includes maintainer, which includes auditor; ci has only
// the webhook.
func Allows(role, needs string) bool { return allows(role, needs) }

// RecordActor names the caller of a request in the service's access log
// (the token's name; never the token).
func RecordActor(w http.ResponseWriter, name string) {
	for {
		switch v := w.(type) {
		case *statusRecorder:
			v.actor = name
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return
		}
	}
}

// RequestError is a request the service refuses: its HTTP status, the
// API's error code, a message and details.
type RequestError struct {
	Status  int
	Code    string
	Message string
	Details []string
}

func (e *RequestError) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	return e.Message + ": " + strings.Join(e.Details, "; ")
}

// ErrNotFound is wrapped by errors about a build that does not exist.
var ErrNotFound = errNotFound

// ErrFinal is matched (errors.Is) by Cancel's error for a build that has
// already ended.
var ErrFinal = errors.New("the build has already ended")

func (e *finalError) Is(target error) bool { return target == ErrFinal }

// SubmitRecipeID queues a build of the recipe with this id (embedded, or
// stored in <state>/recipes), as POST /v1/builds with {"recipe": id} does:
// the same checks, and a build of the same recipe with the same options
// that is queued or running is joined (false) instead. A refused request
// is a *RequestError.
func (s *Service) SubmitRecipeID(ctx context.Context, id string, o SubmitOptions) (*Build, bool, error) {
	if e := checkEnvoySHA256(o.EnvoySHA256); e != nil {
		return nil, false, e
	}
	rec, source, doc, err := s.recipeByID(id)
	if err != nil {
		return nil, false, recipeRequestError(err)
	}
	return s.Submit(ctx, rec, source, doc, o)
}

// Build is one build, as GET /v1/builds/{id} answers; ErrNotFound if there
// is none.
func (s *Service) Build(ctx context.Context, id string) (*Build, error) {
	return s.db.get(ctx, id)
}

// Builds lists builds, newest first, as GET /v1/builds does.
func (s *Service) Builds(ctx context.Context, f ListFilter) ([]Build, error) {
	return s.db.list(ctx, f)
}

// ServeBuildLog answers with the log of the build named by the request's
// {id} path value, as GET /v1/builds/{id}/log does: streamed while the
// build runs, ?offset=N to resume, ?follow=false for what is there.
func (s *Service) ServeBuildLog(w http.ResponseWriter, r *http.Request) {
	s.logHandler(w, r, nil)
}

// StoredRecipes lists the ids of the recipes kept in <state>/recipes (made
// by the webhook or put there by an operator), sorted.
func (s *Service) StoredRecipes() ([]string, error) {
	entries, err := os.ReadDir(s.recipeDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".yaml")
		if ok && e.Type().IsRegular() && recipeIDRE.MatchString(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// withWeb sends what is not the API's (/v1/..., /healthz, /readyz,
// /metrics) to the web pages, when they are mounted.
func (s *Service) withWeb(api http.Handler) http.Handler {
	if s.web == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/v1" || strings.HasPrefix(p, "/v1/"), p == "/healthz", p == "/readyz", p == "/metrics":
			api.ServeHTTP(w, r)
		default:
			s.web.ServeHTTP(w, r)
		}
	})
}
