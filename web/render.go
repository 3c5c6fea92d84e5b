package web

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/service"
)

// pageNames are the templates under templates/, each a page in the layout.
var pageNames = []string{"login", "builds", "build", "trigger", "registry", "image", "verify", "error"}

var funcs = template.FuncMap{
	"time":      fmtTime,
	"timep":     func(t *time.Time) string { return fmtTimePtr(t) },
	"seconds":   fmtSeconds,
	"duration":  fmtDuration,
	"short":     shortDigest,
	"bytes":     output.Bytes,
	"imageLink": imageLink,
	"join":      strings.Join,
	"abbrev":    abbrev,
	"repoPath":  repoPath,
	"long":      func(s string) bool { return len(s) > 240 },
}

func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t := template.Must(layout.Clone())
		pages[name] = template.Must(t.ParseFS(templateFS, "templates/"+name+".html"))
	}
	return pages
}

// view is what the layout shows around every page.
type view struct {
	Title string
	// Nav is the section of the page, for the navigation's current item.
	Nav  string
	User *service.Principal
	Open bool
	// CSRF is the session's token for the page's forms.
	CSRF string
	// CanTrigger and CanCancel say what the caller's role may do.
	CanTrigger bool
	CanCancel  bool
	Registry   bool
	Data       any
}

func (h *Handler) view(s *session, title, nav string, data any) view {
	v := view{Title: title, Nav: nav, Open: h.svc.Open(), Registry: h.aud != nil, Data: data}
	if s != nil {
		v.CSRF = s.csrf
		v.User = s.principal
		if s.principal != nil {
			v.CanTrigger = service.Allows(s.principal.Role, config.RoleMaintainer)
			v.CanCancel = v.CanTrigger
		}
	}
	return v
}

// render writes a page; a template that fails is a 500 (it is logged),
// not half a page.
func (h *Handler) render(w http.ResponseWriter, status int, page string, v view) {
	var buf bytes.Buffer
	if err := h.pages[page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		h.log.WithError(err).WithField("page", page).Error("web: rendering a page")
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	Status  int
	Text    string
	Message string
	Details []string
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string, details ...string) {
	h.render(w, status, "error", h.view(s, http.StatusText(status), "", errorData{Status: status, Text: http.StatusText(status), Message: msg, Details: details}))
}

type loginData struct {
	Next  string
	Error string
}

// localPath keeps next= to a path on this site (not //host or a URL).
func localPath(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	if strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/logout") {
		return "/"
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// loginPage shows the login form, with a fresh session not logged in yet
// for its CSRF token. An open service needs no login.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if h.svc.Open() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s := h.sessions.lookup(r)
	if s != nil && s.principal != nil {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	if s == nil {
		s = h.startSession(w, r, nil)
	}
	h.render(w, http.StatusOK, "login", h.view(s, "Log in", "login", loginData{Next: localPath(r.URL.Query().Get("next"))}))
}

// login checks the token a caller typed. The token goes no further than
// this function: the new session keeps the token's name and role.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	s := h.sessions.lookup(r)
	if err := h.checkForm(r, s); err != nil {
		h.log.WithFields(logrus.Fields{"path": r.URL.Path, "reason": err.Error()}).Warn("web: login form refused")
		h.errorPage(w, r, s, http.StatusForbidden, "The login form was refused: "+err.Error()+". Reload the login page and try again.")
		return
	}
	next := localPath(r.PostForm.Get("next"))
	if h.svc.Open() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	p, ok := h.svc.AuthenticateToken(token)
	if !ok {
		h.log.WithField("remote", r.RemoteAddr).Warn("web: login with a token that is not configured")
		h.render(w, http.StatusUnauthorized, "login", h.view(s, "Log in", "login", loginData{Next: next, Error: "That token is not valid here."}))
		return
	}
	if !service.Allows(p.Role, config.RoleAuditor) {
		h.log.WithFields(logrus.Fields{"actor": p.Name, "role": p.Role}).Warn("web: login refused for the role")
		h.render(w, http.StatusForbidden, "login", h.view(s, "Log in", "login", loginData{Next: next, Error: fmt.Sprintf("The %s role has no pages: it is for the webhook only.", p.Role)}))
		return
	}
	// A new session id at login: an id seen before it (fixation) is void.
	h.sessions.delete(s)
	h.startSession(w, r, &p)
	service.RecordActor(w, p.Name)
	h.log.WithFields(logrus.Fields{"actor": p.Name, "role": p.Role}).Info("web: logged in")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r request) {
	h.sessions.delete(r.s)
	clearCookie(w, r.Request)
	h.log.WithFields(logrus.Fields{"actor": r.s.principal.Name}).Info("web: logged out")
	if h.svc.Open() {
		http.Redirect(w, r.Request, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r.Request, "/login", http.StatusSeeOther)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return fmtTime(*t)
}

// fmtSeconds shows a timing: seconds (float64) or a time.Duration.
func fmtSeconds(v any) string {
	switch v := v.(type) {
	case float64:
		return fmtDuration(time.Duration(v * float64(time.Second)))
	case time.Duration:
		return fmtDuration(v)
	}
	return fmt.Sprint(v)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return ""
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(math.Round(d.Seconds())))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// shortDigest is sha256: and 12 hex digits.
func shortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}

// abbrev is s cut to n characters.
func abbrev(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// repoPath is a repository without its registry host
// (127.0.0.1:5000/fixture/pilot: fixture/pilot).
func repoPath(repo string) string {
	if host, rest, ok := strings.Cut(repo, "/"); ok && strings.ContainsAny(host, ".:") {
		return rest
	}
	return repo
}

// imageLink is the image page of an image reference.
func imageLink(ref string) string {
	return "/registry/image?image=" + url.QueryEscape(ref)
}
