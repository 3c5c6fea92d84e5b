package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// Errors the queries wrap, for errors.Is (the HTTP handler maps them to
// status codes).
var (
	// ErrBadInput is a query the caller got wrong: a malformed image
	// reference, an unknown filter.
	ErrBadInput = errors.New("bad input")
	// ErrNotFound is an image that is not in the registry.
	ErrNotFound = errors.New("not found")
)

// Ledger is the read side of the push ledger; *store.Store is one. The
// auditor never writes to it.
type Ledger interface {
	Entries(ctx context.Context, f store.LedgerFilter) ([]store.Entry, error)
	Tags(ctx context.Context) (map[string]store.TagState, error)
}

// Auditor answers audit queries about one registry. It is safe for
// concurrent use; every query reads the registry afresh, except content
// addressed by digest, which is cached.
type Auditor struct {
	cfg         *config.Config
	rc          *registry.Client
	registry    name.Registry
	ledger      Ledger
	ledgerNote  string
	closeLedger func() error
	concurrency int
	backoff     remote.Backoff
	timeout     time.Duration
	prefixes    []string
	verifier    SignatureVerifier
	cache       *blobCache
	// verdicts remembers signature checks: "<image digest> <signature
	// manifest digest>" → {state, detail}.
	verdicts *lru.Cache[string, [2]string]
	log      logrus.FieldLogger

	recipesMu sync.Mutex
	recipes   map[string]recipeEntry

	transport http.RoundTripper
	cacheDir  *string
	ledgerSet bool
}

// Option configures an Auditor.
type Option func(*Auditor) error

// WithConcurrency bounds how many images are read at once. Default 8.
func WithConcurrency(n int) Option {
	return func(a *Auditor) error {
		if n < 1 {
			return fmt.Errorf("concurrency must be at least 1, not %d", n)
		}
		a.concurrency = n
		return nil
	}
}

// WithTransport sets the HTTP transport to the registry (tests inject
// failures and delays here). Default: go-containerregistry's
// remote.DefaultTransport, through registry.NewClient.
func WithTransport(t http.RoundTripper) Option {
	return func(a *Auditor) error {
		if t == nil {
			return errors.New("WithTransport: nil transport")
		}
		a.transport = t
		return nil
	}
}

// WithRetryBackoff sets how requests answered with 5xx (or failing on the
// network) are retried before an image counts as unreadable. Default: three
// tries, 1 s then 3 s apart.
func WithRetryBackoff(b remote.Backoff) Option {
	return func(a *Auditor) error {
		if b.Steps < 1 {
			return errors.New("WithRetryBackoff: Steps must be at least 1")
		}
		a.backoff = b
		return nil
	}
}

// WithImageTimeout limits how long reading one image (manifest, config,
// attachment list, signature), and then checking it (documents, base), may
// each take before the image counts as unreadable. Default two minutes.
func WithImageTimeout(d time.Duration) Option {
	return func(a *Auditor) error {
		if d <= 0 {
			return errors.New("WithImageTimeout: must be positive")
		}
		a.timeout = d
		return nil
	}
}

// WithLedger sets the ledger to compare tags with. Default: the store in
// the configuration's state directory, opened by New and closed by Close;
// when there is no store file yet, an empty ledger (nothing is created).
func WithLedger(l Ledger) Option {
	return func(a *Auditor) error {
		if l == nil {
			return errors.New("WithLedger: nil ledger")
		}
		a.ledger, a.ledgerSet = l, true
		return nil
	}
}

// WithPrefixes limits the audit to repositories equal to, or under, one
// of the prefixes ("istio" matches istio and istio/pilot, not istiod).
// Default: every repository in the registry.
func WithPrefixes(prefixes ...string) Option {
	return func(a *Auditor) error {
		for _, p := range prefixes {
			p = strings.Trim(p, "/")
			if p == "" {
				continue
			}
			if _, err := name.NewRepository(p); err != nil {
				return fmt.Errorf("prefix %q: %w", p, err)
			}
			a.prefixes = append(a.prefixes, p)
		}
		return nil
	}
}

// WithCacheDir keeps content read by digest on disk under dir, shared by
// every process that audits (content by digest never changes). Default
// <state-dir>/cache/audit; "" keeps the cache in memory only.
func WithCacheDir(dir string) Option {
	return func(a *Auditor) error { a.cacheDir = &dir; return nil }
}

// WithSignatureVerifier checks image signatures with v. Default none:
// signatures are reported present or missing, not verified, and verify
// does not check them.
func WithSignatureVerifier(v SignatureVerifier) Option {
	return func(a *Auditor) error { a.verifier = v; return nil }
}

// WithLogger sets the logger. Default: a logger that discards.
func WithLogger(l logrus.FieldLogger) Option {
	return func(a *Auditor) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		a.log = l
		return nil
	}
}

// New makes an Auditor for the registry cfg configures.
func New(cfg *config.Config, opts ...Option) (*Auditor, error) {
	if cfg == nil {
		return nil, errors.New("audit: no configuration")
	}
	discard := logrus.New()
	discard.SetOutput(io.Discard)
	a := &Auditor{
		cfg:         cfg,
		concurrency: 8,
		backoff:     remote.Backoff{Duration: time.Second, Factor: 3, Jitter: 0.1, Steps: 3},
		timeout:     2 * time.Minute,
		log:         discard,
	}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	var ropts []registry.Option
	if a.transport != nil {
		ropts = append(ropts, registry.WithTransport(a.transport))
	}
	rc, err := registry.NewClient(cfg, append(ropts, registry.WithLogger(a.log))...)
	if err != nil {
		return nil, err
	}
	a.rc = rc
	var nopts []name.Option
	if cfg.RegistryInsecure(cfg.Registry.Address) {
		nopts = append(nopts, name.Insecure)
	}
	if a.registry, err = name.NewRegistry(cfg.Registry.Address, nopts...); err != nil {
		return nil, fmt.Errorf("registry address %q: %w", cfg.Registry.Address, err)
	}
	dir := filepath.Join(cfg.CacheDir(), "audit")
	if a.cacheDir != nil {
		dir = *a.cacheDir
	}
	if a.cache, err = newBlobCache(16384, dir, a.log); err != nil {
		return nil, err
	}
	if a.verdicts, err = lru.New[string, [2]string](16384); err != nil {
		return nil, err
	}
	if !a.ledgerSet {
		path := filepath.Join(cfg.StateDir, store.FileName)
		if _, err := os.Stat(path); err != nil {
			a.ledger = emptyLedger{}
			a.ledgerNote = fmt.Sprintf("no ledger at %s: no tag can be checked against it", path)
		} else {
			st, err := store.OpenReadOnly(context.Background(), path)
			if err != nil {
				return nil, fmt.Errorf("opening the ledger: %w", err)
			}
			a.ledger, a.closeLedger = st, st.Close
		}
	}
	return a, nil
}

// Close releases the ledger New opened.
func (a *Auditor) Close() error {
	if a.closeLedger != nil {
		return a.closeLedger()
	}
	return nil
}

// Registry is the registry audited, host[:port].
func (a *Auditor) Registry() string { return a.registry.RegistryStr() }

// SignaturesChecked says whether a verifier is configured.
func (a *Auditor) SignaturesChecked() bool { return a.verifier != nil }

func (a *Auditor) inScope(repo string) bool {
	if len(a.prefixes) == 0 {
		return true
	}
	for _, p := range a.prefixes {
		if repo == p || strings.HasPrefix(repo, p+"/") {
			return true
		}
	}
	return false
}

type emptyLedger struct{}

func (emptyLedger) Entries(context.Context, store.LedgerFilter) ([]store.Entry, error) {
	return nil, nil
}

func (emptyLedger) Tags(context.Context) (map[string]store.TagState, error) {
	return map[string]store.TagState{}, nil
}
