package bench

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
)

// serviceInputs lets the throughput scenario's service take the recipe's
// inputs as its callers' recipes take theirs: its source by the input
// policy (the recipe's own git URL, a mirror on this machine meant for
// the benchmark) and its Envoy tarballs over HTTP, since the service never
// reads a file:// URL. A file:// Envoy URL is served on loopback, only
// under the folder the URL names, and rewritten to it in the recipes the
// benchmark submits; an http(s) one is allowed as it is.
type serviceInputs struct {
	policy config.InputPolicy
	// rewrite maps a file:// URL prefix to its http:// one.
	rewrite map[string]string
	srv     *http.Server
}

func newServiceInputs(r *recipes.Recipe) (*serviceInputs, error) {
	si := &serviceInputs{rewrite: map[string]string{}}
	si.policy.Git = []string{r.Spec.Source.Git}
	if r.Spec.Inputs.Envoy == nil {
		return si, nil
	}
	var roots []string
	for _, raw := range envoyURLs(r.Spec.Inputs.Envoy) {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("the recipe's Envoy URL %q: %w", raw, err)
		}
		switch u.Scheme {
		case "http", "https":
			si.policy.Artifacts = append(si.policy.Artifacts, u.Scheme+"://"+u.Host+"/")
		case "file":
			// The folder the URL names, before any ${VARIABLE}.
			p := u.Path
			if i := strings.Index(p, "${"); i >= 0 {
				p = p[:i]
			}
			root := path.Dir(p + "x")
			if root == "/" {
				return nil, fmt.Errorf("the recipe's Envoy URL %q: serving / is not allowed; put the tarballs in a folder", raw)
			}
			roots = append(roots, root+"/")
			si.rewrite["file://"+root+"/"] = ""
		default:
			return nil, fmt.Errorf("the recipe's Envoy URL %q: the benchmark's service cannot fetch %s URLs", raw, u.Scheme)
		}
	}
	if len(roots) == 0 {
		return si, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	for k := range si.rewrite {
		si.rewrite[k] = base + strings.TrimPrefix(k, "file://")
	}
	si.policy.Artifacts = append(si.policy.Artifacts, base+"/")
	si.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := path.Clean(req.URL.Path)
		for _, root := range roots {
			if strings.HasPrefix(p, root) {
				http.ServeFile(w, req, p)
				return
			}
		}
		http.NotFound(w, req)
	})}
	go func() { _ = si.srv.Serve(ln) }()
	return si, nil
}

// apply rewrites r's file:// Envoy URLs to the loopback server's.
func (si *serviceInputs) apply(r *recipes.Recipe) {
	e := r.Spec.Inputs.Envoy
	if e == nil {
		return
	}
	e.URL = si.url(e.URL)
	for k, a := range e.Arch {
		a.URL = si.url(a.URL)
		e.Arch[k] = a
	}
}

func (si *serviceInputs) url(u string) string {
	for from, to := range si.rewrite {
		if strings.HasPrefix(u, from) {
			return to + strings.TrimPrefix(u, from)
		}
	}
	return u
}

func (si *serviceInputs) close() {
	if si.srv != nil {
		_ = si.srv.Close()
	}
}

// envoyURLs are the URLs an Envoy input names (the top-level one and each
// architecture's own).
func envoyURLs(e *recipes.Envoy) []string {
	out := []string{e.URL}
	for _, a := range e.Arch {
		if a.URL != "" {
			out = append(out, a.URL)
		}
	}
	return out
}
