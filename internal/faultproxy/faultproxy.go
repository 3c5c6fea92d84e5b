// Package faultproxy is an HTTP proxy in front of an OCI registry that
// injects faults into chosen requests: a burst of 503 answers, a dropped
// connection, a delay. Tests put it between sailmaker and the registry to
// see what a build, the ledger and the audit make of a registry that
// misbehaves at one point of a push. It is test tooling: nothing in the
// sailmaker binary imports it.
//
// A request is classified by what it does to the registry (a blob upload,
// a manifest pushed by digest, an attachment, a tag PUT) and the
// repository it names. A Rule arms a fault for one repository (or a
// prefix) and one kind of request; an armed rule may hold the first
// matching request until the test releases it (Gate), so that a test can
// line up several builds at their faults and then act on all of them at
// once (kill the service, kill buildkitd).
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Target is the kind of registry request a fault applies to.
type Target string

// Targets.
const (
	// BlobUpload is any request of a blob upload: the POST that starts
	// it (or mounts the blob), its PATCHes and its closing PUT.
	BlobUpload Target = "blob upload"
	// ManifestByDigest is a PUT of an image manifest or index by digest.
	ManifestByDigest Target = "manifest by digest"
	// Attachment is a PUT of a manifest about another (it has a subject:
	// a provenance, an SBOM) or of a cosign .sig/.att tag or a referrers
	// fallback tag (sha256-<hex>).
	Attachment Target = "attachment"
	// TagPut is a PUT of a manifest by tag.
	TagPut Target = "tag PUT"
	// Other is every other request (reads, deletes).
	Other Target = "other"
)

// Fault is what happens to a matching request.
type Fault string

// Faults.
const (
	// Burst503 answers 503 Service Unavailable without asking the
	// registry.
	Burst503 Fault = "503 burst"
	// Drop sends the request to the registry, then closes the client's
	// connection without an answer: the registry acted, the client does
	// not know it.
	Drop Fault = "dropped connection"
	// Delay holds the request, then sends it to the registry, whether or
	// not the client is still waiting: a request in flight.
	Delay Fault = "delay"
)

// Rule arms a fault.
type Rule struct {
	// Repo is the repository (fixture/pilot), or with a trailing slash
	// every repository under a prefix (mx/c07/).
	Repo   string
	Target Target
	Fault  Fault
	// Count is how many matching requests get the fault; 0 means every
	// one until Disarm.
	Count int
	// Delay is how long Delay holds a request.
	Delay time.Duration
	// Gate holds the first matching request until Release (or Disarm)
	// before its fault applies.
	Gate bool
}

// Armed is a rule in force.
type Armed struct {
	Rule
	p        *Proxy
	hit      chan struct{}
	hitOnce  sync.Once
	release  chan struct{}
	relOnce  sync.Once
	mu       sync.Mutex
	hits     int
	first    time.Time
	disarmed bool
}

// Hit is closed when the first matching request arrives.
func (a *Armed) Hit() <-chan struct{} { return a.hit }

// Hits is how many requests got the fault.
func (a *Armed) Hits() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits
}

// FirstHit is when the first matching request arrived (zero if none).
func (a *Armed) FirstHit() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first
}

// Release lets a gated request go on to its fault.
func (a *Armed) Release() { a.relOnce.Do(func() { close(a.release) }) }

// Disarm ends the rule: later requests pass untouched (a request already
// held by a delay still waits for it).
func (a *Armed) Disarm() {
	a.mu.Lock()
	a.disarmed = true
	a.mu.Unlock()
	a.Release()
}

// take says whether a matching request gets the fault, counting it.
func (a *Armed) take() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.disarmed || (a.Count > 0 && a.hits >= a.Count) {
		return false
	}
	a.hits++
	if a.hits == 1 {
		a.first = time.Now()
	}
	return true
}

func (a *Armed) matches(repo string, t Target) bool {
	if t != a.Target {
		return false
	}
	if strings.HasSuffix(a.Repo, "/") {
		return strings.HasPrefix(repo, a.Repo)
	}
	return repo == a.Repo
}

// Proxy is a running fault proxy.
type Proxy struct {
	upstream *url.URL
	client   *http.Client
	ln       net.Listener
	srv      *http.Server

	mu       sync.Mutex
	rules    []*Armed
	inflight map[string]int // by repository
	idle     *sync.Cond
	counts   map[string]int // requests by "repository target"
}

// New starts a proxy on a free loopback port in front of the registry at
// upstream (host:port, plain HTTP).
func New(upstream string) (*Proxy, error) {
	u, err := url.Parse("http://" + upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		upstream: u,
		// No redirects followed: the client sees the registry's own.
		client:   &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		ln:       ln,
		inflight: map[string]int{},
		counts:   map[string]int{},
	}
	p.idle = sync.NewCond(&p.mu)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy.
func (p *Proxy) Close() error {
	p.mu.Lock()
	for _, a := range p.rules {
		a.Disarm()
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.srv.Shutdown(ctx)
}

// Arm puts a rule in force.
func (p *Proxy) Arm(r Rule) *Armed {
	a := &Armed{Rule: r, p: p, hit: make(chan struct{}), release: make(chan struct{})}
	if !r.Gate {
		a.Release()
	}
	p.mu.Lock()
	p.rules = append(p.rules, a)
	p.mu.Unlock()
	return a
}

// Count is how many requests of kind t reached the proxy for repositories
// matching repo (a name, or a prefix ending in a slash).
func (p *Proxy) Count(repo string, t Target) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, c := range p.counts {
		r, kt, _ := strings.Cut(k, " ")
		if Target(kt) == t && (r == repo || (strings.HasSuffix(repo, "/") && strings.HasPrefix(r, repo))) {
			n += c
		}
	}
	return n
}

// WaitIdle waits until no request for repositories under prefix is in
// the proxy (held, delayed or on its way to the registry), or timeout.
func (p *Proxy) WaitIdle(prefix string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.idle.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		busy := 0
		for repo, n := range p.inflight {
			if strings.HasPrefix(repo, prefix) {
				busy += n
			}
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d requests for %s* still in the proxy after %s", busy, prefix, timeout)
		}
		p.idle.Wait()
	}
}

var (
	uploadRE   = regexp.MustCompile(`^/v2/(.+)/blobs/uploads(/.*)?$`)
	manifestRE = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	anyRE      = regexp.MustCompile(`^/v2/(.+)/(blobs|manifests|tags|referrers)/`)
	digestRE   = regexp.MustCompile(`^[a-z0-9]+:[0-9a-f]{32,}$`)
	attachTag  = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.sig|\.att|\.sbom)?$`)
)

// Classify tells what a request does and to which repository. body is a
// manifest PUT's body (nil for others).
func Classify(r *http.Request, body []byte) (repo string, t Target) {
	path := r.URL.Path
	if m := uploadRE.FindStringSubmatch(path); m != nil && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodDelete {
		return m[1], BlobUpload
	}
	if m := manifestRE.FindStringSubmatch(path); m != nil && r.Method == http.MethodPut {
		ref := m[2]
		if attachTag.MatchString(ref) {
			return m[1], Attachment
		}
		if !digestRE.MatchString(ref) {
			return m[1], TagPut
		}
		var doc struct {
			Subject *json.RawMessage `json:"subject"`
		}
		if json.Unmarshal(body, &doc) == nil && doc.Subject != nil {
			return m[1], Attachment
		}
		return m[1], ManifestByDigest
	}
	if m := anyRE.FindStringSubmatch(path); m != nil {
		return m[1], Other
	}
	return "", Other
}

// ServeHTTP proxies one request, with its fault if a rule matches.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	isManifest := r.Method == http.MethodPut && manifestRE.MatchString(r.URL.Path)
	if isManifest {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, 16<<20)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	repo, target := Classify(r, body)
	p.mu.Lock()
	p.inflight[repo]++
	p.counts[repo+" "+string(target)]++
	var rule *Armed
	for _, a := range p.rules {
		if a.matches(repo, target) {
			rule = a
			break
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight[repo]--
		p.idle.Broadcast()
		p.mu.Unlock()
	}()

	if rule != nil && rule.take() {
		rule.hitOnce.Do(func() { close(rule.hit) })
		<-rule.release
		switch rule.Fault {
		case Burst503:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAVAILABLE","message":"service unavailable (fault injected)"}]}`)
			return
		case Drop:
			if resp, err := p.forward(context.WithoutCancel(r.Context()), r, body); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					if tc, ok := c.(*net.TCPConn); ok {
						_ = tc.SetLinger(0) // a reset, as a dropped connection looks
					}
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case Delay:
			time.Sleep(rule.Delay)
			// Sent whether or not the client still waits.
			resp, err := p.forward(context.WithoutCancel(r.Context()), r, body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			copyResponse(w, resp)
			return
		}
	}
	resp, err := p.forward(r.Context(), r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	copyResponse(w, resp)
}

// forward sends r (with body, if read already) to the registry, keeping
// the Host the client used, so that the registry's Location headers point
// back at the proxy.
func (p *Proxy) forward(ctx context.Context, r *http.Request, body []byte) (*http.Response, error) {
	u := *r.URL
	u.Scheme, u.Host = p.upstream.Scheme, p.upstream.Host
	var rd io.Reader = r.Body
	if body != nil {
		rd = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	if body != nil {
		out.ContentLength = int64(len(body))
	} else {
		out.ContentLength = r.ContentLength
	}
	return p.client.Do(out)
}

func copyResponse(w http.ResponseWriter, resp *http.Response) {
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}
