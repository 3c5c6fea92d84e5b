// Package web is the build service's web pages: the queue and history of
// builds, a build's phases, images and live log, a form to queue a build,
// and the registry as the audit sees it (images, an image's provenance,
// SBOM, signature and ledger history, verify's findings).
//
// The pages are server-rendered html/template, with one small script and
// one stylesheet embedded in the binary. They are mounted by the service
// (service.Options.WebHandler) and use its authentication, roles and build
// operations: what a page does goes through the same code as the API.
//
// A caller logs in with a service token in a form; the token is checked
// and forgotten, and the browser gets an HttpOnly, SameSite=Strict cookie
// holding a random session id (the server keeps its sha256, the caller's
// name and role, and the session's CSRF token, in memory: a restart logs
// everyone out). Every form that changes something carries the CSRF token
// and is checked for a cross-origin request. Every response carries a
// Content-Security-Policy that allows only the embedded script and
// stylesheet.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/service"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every response: scripts, styles,
// images and fetches from this origin only (no inline script or style),
// forms post only here, and no page may frame these.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// SessionCookie is the name of the cookie holding the session id.
const SessionCookie = "sailmaker_session"

// Options configure the pages.
type Options struct {
	// Auditor answers the registry pages; nil leaves them out.
	Auditor *audit.Auditor
	// Log receives logins, logouts and refusals (never a token).
	Log logrus.FieldLogger
	// SessionTTL is how long a login lasts; default 12h.
	SessionTTL time.Duration
}

// Handler serves the pages.
type Handler struct {
	svc      *service.Service
	aud      *audit.Auditor
	log      logrus.FieldLogger
	sessions *sessions
	cop      *http.CrossOriginProtection
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New makes the pages of svc. It is what service.Options.WebHandler takes:
//
//	service.Options{WebHandler: func(s *service.Service) http.Handler { return web.New(s, opts) }}
func New(svc *service.Service, o Options) *Handler {
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	h := &Handler{
		svc:      svc,
		aud:      o.Auditor,
		log:      o.Log,
		sessions: newSessions(o.SessionTTL),
		cop:      http.NewCrossOriginProtection(),
		pages:    parsePages(),
		mux:      http.NewServeMux(),
	}
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.Handle("POST /logout", h.form(config.RoleAuditor, h.logout))
	h.mux.Handle("GET /{$}", h.page(config.RoleAuditor, h.buildsPage))
	h.mux.Handle("GET /builds/{id}", h.page(config.RoleAuditor, h.buildPage))
	h.mux.Handle("GET /builds/{id}/log", h.page(config.RoleAuditor, h.buildLog))
	h.mux.Handle("POST /builds/{id}/cancel", h.form(config.RoleMaintainer, h.cancel))
	h.mux.Handle("GET /trigger", h.page(config.RoleMaintainer, h.triggerPage))
	h.mux.Handle("POST /trigger", h.form(config.RoleMaintainer, h.trigger))
	if h.aud != nil {
		h.mux.Handle("GET /registry", h.page(config.RoleAuditor, h.registryPage))
		h.mux.Handle("GET /registry/image", h.page(config.RoleAuditor, h.imagePage))
		h.mux.Handle("GET /registry/verify", h.page(config.RoleAuditor, h.verifyPage))
	}
	return h
}

// ServeHTTP sets the security headers every response carries, then serves
// the page (an HTML 404 or 405 for what there is none of).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	hd.Set("Cache-Control", "no-store")
	if r.TLS != nil {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		probe := &statusProbe{header: http.Header{}}
		h.mux.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			hd.Set("Allow", probe.header.Get("Allow"))
			h.errorPage(w, r, nil, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed here.", r.Method))
			return
		}
		if loc := probe.header.Get("Location"); loc != "" && probe.status >= 300 && probe.status < 400 {
			http.Redirect(w, r, loc, probe.status)
			return
		}
		h.errorPage(w, r, h.sessions.lookup(r), http.StatusNotFound, "There is no page "+r.URL.Path+".")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// statusProbe records what ServeMux's own handlers would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(code int)        { p.status = code }

// request is one authenticated request to a page.
type request struct {
	*http.Request
	s *session
}

func (r request) user() service.Principal { return *r.s.principal }

// page serves GET pages to a logged-in caller whose role allows needs; a
// caller without a session is sent to the login page.
func (h *Handler) page(needs string, fn func(http.ResponseWriter, request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.authorize(w, r, needs)
		if !ok {
			return
		}
		fn(w, request{r, s})
	})
}

// form serves a form's POST: a logged-in caller whose role allows needs,
// from this origin, with the session's CSRF token.
func (h *Handler) form(needs string, fn func(http.ResponseWriter, request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s := h.sessions.lookup(r)
		if err := h.checkForm(r, s); err != nil {
			h.log.WithFields(logrus.Fields{"path": r.URL.Path, "reason": err.Error()}).Warn("web: form refused")
			h.errorPage(w, r, s, http.StatusForbidden, "The form was refused: "+err.Error()+". Reload the page and try again.")
			return
		}
		s, ok := h.authorize(w, r, needs)
		if !ok {
			return
		}
		fn(w, request{r, s})
	})
}

// checkForm refuses a cross-origin post and one without the session's CSRF
// token.
func (h *Handler) checkForm(r *http.Request, s *session) error {
	if err := h.cop.Check(r); err != nil {
		return errors.New("it came from another origin")
	}
	if s == nil {
		return errors.New("there is no session (log in again)")
	}
	if err := r.ParseForm(); err != nil {
		return errors.New("the form could not be read")
	}
	if !s.checkCSRF(r.PostForm.Get("csrf")) {
		return errors.New("its CSRF token is missing or not this session's")
	}
	return nil
}

// authorize finds the caller's session (an open service makes one for
// anyone), refusing callers without one and roles that do not allow needs.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, needs string) (*session, bool) {
	s := h.sessions.lookup(r)
	if (s == nil || s.principal == nil) && h.svc.Open() {
		p, _ := h.svc.AuthenticateToken("")
		s = h.startSession(w, r, &p)
	}
	if s == nil || s.principal == nil {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return nil, false
		}
		h.errorPage(w, r, s, http.StatusUnauthorized, "Log in first.")
		return nil, false
	}
	service.RecordActor(w, s.principal.Name)
	if !service.Allows(s.principal.Role, needs) {
		h.log.WithFields(logrus.Fields{"actor": s.principal.Name, "role": s.principal.Role, "path": r.URL.Path, "needs": needs}).Warn("web: refused for the role")
		h.errorPage(w, r, s, http.StatusForbidden, fmt.Sprintf("The %s role may not do this; it needs %s.", s.principal.Role, needs))
		return nil, false
	}
	return s, true
}

// startSession makes a session (p nil: not logged in yet) and sets its
// cookie.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, p *service.Principal) *session {
	id, s := h.sessions.create(p)
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    id,
		Path:     "/",
		MaxAge:   int(h.sessions.ttl / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	return s
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// withTimeout is a request's context with a limit for registry reads.
func withTimeout(r request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}
