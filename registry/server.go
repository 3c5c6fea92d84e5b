package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// The filesystem storage driver registers itself.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Server is the embedded OCI registry: the CNCF distribution registry run
// in-process, content on disk under Root, so a restart loses nothing. In
// front of distribution, it serves the OCI 1.1 referrers API (see
// referrers.go), with its index on disk under Root as well.
type Server struct {
	root    string
	handler http.Handler
	srv     *http.Server
	ln      net.Listener
	cancel  context.CancelFunc
}

// ServerOption configures a Server.
type ServerOption func(*serverOptions) error

type serverOptions struct {
	layerURLs []string
}

// WithLayerURLs accepts image manifests whose layers carry URLs (the
// "non-distributable" layers of image-spec 1.0: content the registry does
// not hold, fetched by clients from elsewhere) when every URL matches one of
// the regular expressions. Default: none; such a manifest is refused, since
// an image in the internal registry must not send its pullers to another
// host.
func WithLayerURLs(allow ...string) ServerOption {
	return func(o *serverOptions) error {
		for _, a := range allow {
			if _, err := regexp.Compile(a); err != nil {
				return fmt.Errorf("WithLayerURLs: %w", err)
			}
		}
		o.layerURLs = append(o.layerURLs, allow...)
		return nil
	}
}

// NewServer prepares a registry that stores its content under root. It
// serves nothing until Start. The registry logs through logrus' standard
// logger.
func NewServer(ctx context.Context, root string, opts ...ServerOption) (*Server, error) {
	if root == "" {
		return nil, errors.New("registry root directory is required")
	}
	var o serverOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating registry root: %w", err)
	}
	secret, err := httpSecret(root)
	if err != nil {
		return nil, err
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": root},
			"delete":     configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{
				"uploadpurging": map[any]any{"enabled": false},
			},
		},
	}
	cfg.HTTP.Secret = secret
	// Clients such as go-containerregistry ask for 1000 entries a page.
	cfg.Catalog.MaxEntries = 10000
	cfg.Log.AccessLog.Disabled = true
	cfg.Validation.Manifests.URLs.Allow = o.layerURLs
	ctx, cancel := context.WithCancel(ctx)
	app, err := newApp(ctx, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	log := logrus.StandardLogger().WithField("component", "registry")
	index, err := openReferrersIndex(ctx, root, log)
	if err != nil {
		cancel()
		return nil, err
	}
	h := &referrersHandler{next: app, index: index, log: log}
	return &Server{root: root, handler: h, cancel: cancel}, nil
}

// newApp turns distribution's panics on bad storage into errors.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting the registry: %v", r)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// httpSecret keeps one secret per root, so upload URLs handed out before a
// restart stay valid after it.
func httpSecret(root string) (string, error) {
	p := filepath.Join(root, ".http-secret")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing registry secret: %w", err)
	}
	return s, nil
}

// Root is the directory the registry stores its content in.
func (s *Server) Root() string { return s.root }

// Handler is the registry's HTTP handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves in the
// background. Addr tells where it listens.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if isAddrInUse(err) {
			return fmt.Errorf("registry address %s is taken by another program: stop it, or choose another --addr: %w", addr, err)
		}
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Addr is host:port of the listener, after Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops serving, waiting up to the context's deadline for requests in
// flight.
func (s *Server) Close(ctx context.Context) error {
	defer s.cancel()
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

func isAddrInUse(err error) bool {
	return strings.Contains(err.Error(), "address already in use")
}

// Ping checks that a registry answers the OCI distribution API at host.
func Ping(ctx context.Context, host string, insecure bool) error {
	scheme := "https"
	if insecure {
		scheme = "http"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("registry %s is not reachable (is it running? `sailmaker dev up` starts the embedded one): %w", host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("registry %s answered %s to GET /v2/", host, resp.Status)
	}
	return nil
}
