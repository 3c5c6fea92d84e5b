package config

import (
	"fmt"
	"regexp"
	"strings"
)

// WorkerConfig is one buildkitd of the pool that runs the service's builds.
type WorkerConfig struct {
	// Name identifies the worker in the API, metrics, logs and provenance:
	// a DNS label (lower-case letters, digits and '-').
	Name string `yaml:"name" json:"name"`
	// Address is tcp://host:port (with mutual TLS: CACert, Cert and Key are
	// required) or unix:///path.
	Address string `yaml:"address" json:"address"`
	// CACert verifies the worker's server certificate; Cert and Key are
	// sailmaker's client certificate, which the worker checks against the
	// CA it was started with (--tlscacert).
	CACert string `yaml:"caCert" json:"caCert,omitempty"`
	Cert   string `yaml:"cert" json:"cert,omitempty"`
	Key    string `yaml:"key" json:"key,omitempty"`
	// ServerName is the name the worker's certificate must carry; default:
	// the host of Address.
	ServerName string `yaml:"serverName" json:"serverName,omitempty"`
	// Slots is how many builds the worker runs at once (default 1).
	Slots *int `yaml:"slots" json:"slots,omitempty"`
}

// SlotCount is Slots, or 1 when unset.
func (w WorkerConfig) SlotCount() int {
	if w.Slots == nil {
		return 1
	}
	return *w.Slots
}

// CacheConfig is the BuildKit cache shared by the workers through the
// registry.
type CacheConfig struct {
	// Repository is where the workers export and import their build cache
	// (BuildKit's type=registry, mode=max), under registry.address: one tag
	// per recipe line in <repository>/<line>. Default "sailmaker-cache" with
	// buildkit.workers, none (off) with a single buildkit.address. "off"
	// turns it off.
	Repository string `yaml:"repository"`
}

// DefaultCacheRepository is the registry cache's repository with a pool.
const DefaultCacheRepository = "sailmaker-cache"

// DefaultWorkerName names the one worker of a single buildkit.address.
const DefaultWorkerName = "default"

var (
	workerNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	repoPathRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*$`)
)

// Workers is the pool of buildkitd the service runs builds on: the
// configured buildkit.workers, or else buildkit.address as a pool of one
// worker named "default" with server.concurrency slots.
func (c *Config) Workers() []WorkerConfig {
	if len(c.BuildKit.Workers) > 0 {
		return c.BuildKit.Workers
	}
	n := c.Server.Concurrency
	if n < 1 {
		n = 1
	}
	b := c.BuildKit
	return []WorkerConfig{{Name: DefaultWorkerName, Address: b.Address, CACert: b.CACert, Cert: b.Cert, Key: b.Key, ServerName: b.ServerName, Slots: &n}}
}

// CacheRepository is the registry cache's repository, "" when it is off.
func (c *Config) CacheRepository() string {
	switch r := c.BuildKit.Cache.Repository; {
	case r == "off":
		return ""
	case r != "":
		return r
	case len(c.BuildKit.Workers) > 0:
		return DefaultCacheRepository
	default:
		return ""
	}
}

// validateBuildKit checks buildkit.address or buildkit.workers.
func (c *Config) validateBuildKit() error {
	b := c.BuildKit
	if r := b.Cache.Repository; r != "" && r != "off" && !repoPathRE.MatchString(r) {
		return fmt.Errorf("buildkit.cache.repository %q: must be a repository path (lower-case, like sailmaker-cache), or off", r)
	}
	if len(b.Workers) == 0 {
		if !strings.HasPrefix(b.Address, "unix://") && !strings.HasPrefix(b.Address, "tcp://") {
			return c.settingErrorf("buildkit.address", "%q must start with unix:// or tcp://", b.Address)
		}
		tlsFiles := b.CACert != "" || b.Cert != "" || b.Key != ""
		if tlsFiles && !strings.HasPrefix(b.Address, "tcp://") {
			return fmt.Errorf("buildkit.caCert/cert/key are for a tcp:// address, not %q", b.Address)
		}
		if (b.Cert == "") != (b.Key == "") {
			return fmt.Errorf("buildkit.cert and buildkit.key go together")
		}
		return nil
	}
	if b.Address != "" || b.CACert != "" || b.Cert != "" || b.Key != "" || b.ServerName != "" {
		what := "buildkit.address"
		if b.Address == "" {
			what = "buildkit.caCert/cert/key/serverName"
		}
		return fmt.Errorf("%s and buildkit.workers are both set: use one (a single address is a pool of one; with workers, give each its address and certificates; BUILDKIT_HOST sets buildkit.address too)", what)
	}
	names := map[string]int{}
	for i, w := range b.Workers {
		at := fmt.Sprintf("buildkit.workers[%d]", i)
		if w.Name != "" {
			at += " (" + w.Name + ")"
		}
		switch {
		case w.Name == "":
			return fmt.Errorf("%s: name is required (a DNS label such as bk-0)", at)
		case !workerNameRE.MatchString(w.Name):
			return fmt.Errorf("%s: name %q must be a DNS label: lower-case letters, digits and '-', at most 63", at, w.Name)
		}
		if j, dup := names[w.Name]; dup {
			return fmt.Errorf("%s: the name %q is already used by buildkit.workers[%d]: names must be unique", at, w.Name, j)
		}
		names[w.Name] = i
		switch {
		case strings.HasPrefix(w.Address, "tcp://"):
			if w.CACert == "" || w.Cert == "" || w.Key == "" {
				return fmt.Errorf("%s: a tcp:// worker needs mutual TLS: set caCert, cert and key (`sailmaker certs new --out DIR --worker %s` makes them)", at, w.Name)
			}
			if strings.TrimPrefix(w.Address, "tcp://") == "" {
				return fmt.Errorf("%s: address %q has no host:port", at, w.Address)
			}
		case strings.HasPrefix(w.Address, "unix://"):
			if w.CACert != "" || w.Cert != "" || w.Key != "" {
				return fmt.Errorf("%s: caCert/cert/key are for a tcp:// address, not %q", at, w.Address)
			}
		case w.Address == "":
			return fmt.Errorf("%s: address is required (tcp://host:port)", at)
		default:
			return fmt.Errorf("%s: address %q must start with tcp:// or unix://", at, w.Address)
		}
		if w.Slots != nil && *w.Slots < 1 {
			return fmt.Errorf("%s: slots %d: must be at least 1 (builds the worker runs at once)", at, *w.Slots)
		}
	}
	return nil
}
