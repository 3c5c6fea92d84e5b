package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sailmaker/sailmaker/store"
)

// Handler serves the audit queries, read-only, under /v1/audit/:
//
//	GET /v1/audit/images?repository=&version=&commit=&base=
//	GET /v1/audit/show?image=
//	GET /v1/audit/verify
//	GET /v1/audit/uses?module=path[@version] | ?package=name[=version]
//	GET /v1/audit/diff?a=&b=
//	GET /v1/audit/ledger?repository=&tag=&build=&since=&limit=
//
// Answers are JSON, or CSV with format=csv. Errors are JSON
// {"error":{"code","message"}}: 400 for bad input, 404 for an unknown
// image, 405 for anything but GET/HEAD, 500 when the ledger cannot be
// read, 502 when the registry cannot be read. A partial result (some images unreadable) is 200 with its warnings
// and the header Audit-Partial naming how many; verify with findings is
// 200 with the header Audit-Findings. Access control (the auditor role) is
// the mounting service's.
func Handler(a *Auditor) http.Handler {
	mux := http.NewServeMux()
	route := func(path string, f func(r *http.Request, q url.Values) (Tabular, error)) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed: the audit API is read-only")
				return
			}
			q := r.URL.Query()
			format := q.Get("format")
			if format == "" {
				format = "json"
			}
			if format != "json" && format != "csv" {
				writeError(w, http.StatusBadRequest, "bad-request", fmt.Sprintf("format %q: use json or csv", format))
				return
			}
			res, err := f(r, q)
			if err != nil {
				status, code := classify(r.Context(), err)
				writeError(w, status, code, err.Error())
				return
			}
			if p := res.Partial(); p.Partial() {
				w.Header().Set("Audit-Partial", fmt.Sprintf("%d unreadable", len(p)))
			}
			if rep, ok := res.(*Report); ok {
				w.Header().Set("Audit-Findings", strconv.Itoa(len(rep.Findings)))
			}
			if format == "csv" {
				w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			} else {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodHead {
				return
			}
			_ = Write(w, format, res)
		})
	}
	route("/v1/audit/images", func(r *http.Request, q url.Values) (Tabular, error) {
		return a.Images(r.Context(), Filter{Repository: q.Get("repository"), Version: q.Get("version"), Commit: q.Get("commit"), Base: q.Get("base")})
	})
	route("/v1/audit/show", func(r *http.Request, q url.Values) (Tabular, error) {
		if q.Get("image") == "" {
			return nil, fmt.Errorf("%w: image= is required (repository:tag or repository@digest)", ErrBadInput)
		}
		return a.Show(r.Context(), q.Get("image"))
	})
	route("/v1/audit/verify", func(r *http.Request, _ url.Values) (Tabular, error) {
		return a.Verify(r.Context())
	})
	route("/v1/audit/uses", func(r *http.Request, q url.Values) (Tabular, error) {
		uq, err := ParseUses(q.Get("module"), q.Get("package"))
		if err != nil {
			return nil, err
		}
		return a.Uses(r.Context(), uq)
	})
	route("/v1/audit/diff", func(r *http.Request, q url.Values) (Tabular, error) {
		if q.Get("a") == "" || q.Get("b") == "" {
			return nil, fmt.Errorf("%w: a= and b= are both required", ErrBadInput)
		}
		return a.Diff(r.Context(), q.Get("a"), q.Get("b"))
	})
	route("/v1/audit/ledger", func(r *http.Request, q url.Values) (Tabular, error) {
		f := store.LedgerFilter{Repository: q.Get("repository"), Tag: q.Get("tag"), BuildID: q.Get("build")}
		if s := q.Get("since"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return nil, fmt.Errorf("%w: since %q: want RFC 3339 (2006-01-02T15:04:05Z)", ErrBadInput, s)
			}
			f.Since = t
		}
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: limit %q: want a number", ErrBadInput, s)
			}
			f.Limit = n
		}
		return a.Ledger(r.Context(), f)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not-found", "no such audit query: "+r.URL.Path+" (images, show, verify, uses, diff, ledger under /v1/audit/)")
	})
	return mux
}

func classify(ctx context.Context, err error) (int, string) {
	var le *ledgerError
	switch {
	case errors.As(err, &le):
		return http.StatusInternalServerError, "ledger-error"
	case errors.Is(err, ErrBadInput):
		return http.StatusBadRequest, "bad-request"
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not-found"
	case ctx.Err() != nil:
		return http.StatusServiceUnavailable, "cancelled"
	}
	return http.StatusBadGateway, "registry-error"
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
