package bench

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Proxy is a reverse proxy in front of a registry that counts what passes
// through it. Every path of the benchmark talks to the registry through it,
// so what each one uploads is measured the same way, at the wire, whoever
// the client is (sailmaker's go-containerregistry, BuildKit's pusher).
type Proxy struct {
	// Addr is host:port the proxy listens on (127.0.0.1, a free port).
	Addr string

	srv *http.Server
	mu  sync.Mutex
	cur Traffic
}

// Traffic is what went through the proxy since the last Take.
type Traffic struct {
	// Uploaded is the bytes of request bodies (blob uploads, manifests).
	Uploaded int64 `json:"uploaded"`
	// Downloaded is the bytes of GET response bodies (pulls).
	Downloaded int64 `json:"downloaded"`
	// Blobs are the digests of blobs uploaded, Mounts those mounted from
	// another repository of the registry (nothing sent).
	Blobs  []string `json:"blobs,omitempty"`
	Mounts []string `json:"mounts,omitempty"`
	// Manifests is how many manifests were pushed.
	Manifests int `json:"manifests"`
	Requests  int `json:"requests"`
}

// StartProxy listens on a free loopback port and forwards to the registry
// at upstream (host:port, plain HTTP).
func StartProxy(upstream string) (*Proxy, error) {
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		return nil, fmt.Errorf("registry address %q: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the registry proxy: %w", err)
	}
	p := &Proxy{Addr: ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(target)
	// The Host header stays the proxy's, so the registry's upload URLs
	// point back through it.
	rp.ModifyResponse = p.observe
	rp.ErrorLog = log.New(io.Discard, "", 0) // a client going away is not ours to report
	p.srv = &http.Server{Handler: p.handler(rp), ReadHeaderTimeout: time.Minute}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *Proxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.cur.Requests++
		p.mu.Unlock()
		if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = &countingReader{r: r.Body, add: func(n int) { p.add(&p.cur.Uploaded, n) }}
		}
		next.ServeHTTP(w, r)
	})
}

// observe records what a response says was done, and counts pulled bytes.
func (p *Proxy) observe(resp *http.Response) error {
	req := resp.Request
	path, q := req.URL.Path, req.URL.Query()
	if req.Method == http.MethodGet {
		resp.Body = &countingReader{r: resp.Body, add: func(n int) { p.add(&p.cur.Downloaded, n) }}
		return nil
	}
	if resp.StatusCode != http.StatusCreated {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case strings.Contains(path, "/blobs/uploads/") && q.Get("mount") != "":
		p.cur.Mounts = append(p.cur.Mounts, q.Get("mount"))
	case strings.Contains(path, "/blobs/uploads/") && q.Get("digest") != "":
		p.cur.Blobs = append(p.cur.Blobs, q.Get("digest"))
	case req.Method == http.MethodPut && strings.Contains(path, "/manifests/"):
		p.cur.Manifests++
	}
	return nil
}

func (p *Proxy) add(n *int64, k int) {
	p.mu.Lock()
	*n += int64(k)
	p.mu.Unlock()
}

// Take returns the traffic since the last Take and starts counting afresh.
func (p *Proxy) Take() Traffic {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.cur
	p.cur = Traffic{}
	return t
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.srv.Shutdown(ctx)
}

type countingReader struct {
	r   io.ReadCloser
	add func(int)
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.add(n)
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
