// Package config reads sailmaker's configuration: one YAML file, then
// environment overrides, then flags (applied by the commands). With no file at
// all the embedded defaults serve: a registry and a buildkitd on this machine,
// state under /var/lib/sailmaker.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultStateDir is where sailmaker keeps its state when nothing says otherwise.
const DefaultStateDir = "/var/lib/sailmaker"

// DefaultRegistryAddr is the embedded registry's address.
const DefaultRegistryAddr = "127.0.0.1:5000"

// Config is the whole configuration.
type Config struct {
	// StateDir holds the embedded registry's content, buildkitd's state, the
	// input cache and the pid files of what `dev up` started.
	StateDir string         `yaml:"stateDir"`
	Registry RegistryConfig `yaml:"registry"`
	BuildKit BuildKitConfig `yaml:"buildkit"`
	Debian   DebianConfig   `yaml:"debian"`
	Go       GoConfig       `yaml:"go"`
	Git      GitConfig      `yaml:"git"`
	Signing  SigningConfig  `yaml:"signing"`
	Server   ServerConfig   `yaml:"server"`
	Packages PackagesConfig `yaml:"packages"`

	// origins maps a setting's key to where its value came from (Origin).
	origins map[string]string
}

// SigningConfig: with Key set, builds sign every image they push.
type SigningConfig struct {
	// Key is a PEM file with an unencrypted ECDSA P-256 private key (PKCS#8,
	// as `sailmaker signing keygen` writes); $SAILMAKER_SIGNING_KEY.
	Key string `yaml:"key"`
	// AptKey is an unencrypted OpenPGP secret key (as `sailmaker signing
	// keygen --openpgp` writes it, sailmaker-apt.asc) that signs the apt
	// repository's Release files; $SAILMAKER_APT_KEY.
	AptKey string `yaml:"aptKey"`
}

// RegistryConfig says where images go.
type RegistryConfig struct {
	// Address is host[:port] of the internal registry that ${REGISTRY} names.
	// Default 127.0.0.1:5000, the embedded registry.
	Address string `yaml:"address"`
	// Insecure allows plain HTTP to Address. It is implied for loopback
	// addresses; for anything else it must be said.
	Insecure bool `yaml:"insecure"`
	// Allow lists further registries (host[:port]) that image references may
	// name. Address is always allowed; nothing else is.
	Allow []string `yaml:"allow"`
	// Root is the embedded registry's content directory (default
	// <stateDir>/registry).
	Root string `yaml:"root"`
}

// BuildKitConfig says how to reach buildkitd.
type BuildKitConfig struct {
	// Address is unix:///path or tcp://host:port. Default: the buildkitd that
	// `sailmaker dev up` starts, unix://<stateDir>/buildkitd/buildkitd.sock.
	Address string `yaml:"address"`
	// CACert, Cert and Key are the mTLS files for a tcp:// address.
	CACert     string `yaml:"caCert"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ServerName string `yaml:"serverName"`
	// Workers, instead of Address, is a pool of buildkitd the service
	// spreads builds over (see Workers()).
	Workers []WorkerConfig `yaml:"workers"`
	// Cache is the build cache the workers share through the registry.
	Cache CacheConfig `yaml:"cache"`
}

// DebianConfig says where Debian packages come from.
type DebianConfig struct {
	// Mirror is a Debian mirror URL (http://mirror.internal/debian). Empty
	// means this machine's own apt sources, as apt uses them.
	Mirror string `yaml:"mirror"`
}

// GoConfig says where Go modules and toolchains come from.
type GoConfig struct {
	// Proxy and SumDB are GOPROXY and GOSUMDB for fetching inputs outside
	// the build. Empty means the values `go env` reports.
	Proxy string `yaml:"proxy"`
	SumDB string `yaml:"sumdb"`
}

// GitConfig holds URL rewrites for air-gapped sources.
type GitConfig struct {
	Mirrors []GitMirror `yaml:"mirrors"`
}

// GitMirror rewrites any git URL that starts with InsteadOf to start with URL
// instead, like git's url.<URL>.insteadOf.
type GitMirror struct {
	URL       string `yaml:"url"`
	InsteadOf string `yaml:"insteadOf"`
}

// Load reads the config file at path (empty: $SAILMAKER_CONFIG, then
// <state-dir>/config.yaml if it exists, else defaults), applies environment
// overrides, then stateDir (the --state-dir flag; empty: none), and fills
// defaults, which derive from the state directory.
func Load(path, stateDir string) (*Config, error) {
	cfg := &Config{}
	if path == "" {
		path = os.Getenv("SAILMAKER_CONFIG")
	}
	if path == "" {
		dir := stateDir
		if dir == "" {
			dir = stateDirFromEnv()
		}
		candidate := filepath.Join(dir, "config.yaml")
		if _, err := os.Stat(candidate); err == nil {
			path = candidate
		}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		cfg.recordFileOrigins(path, data)
	}
	cfg.applyEnv()
	if stateDir != "" {
		abs, err := filepath.Abs(stateDir)
		if err != nil {
			return nil, err
		}
		cfg.StateDir = abs
		cfg.SetOrigin("stateDir", "--state-dir")
	}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		if path != "" && !cfg.notFromFile(err) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, err
	}
	return cfg, nil
}

// Default returns the embedded defaults with environment overrides applied.
func Default() *Config {
	cfg := &Config{}
	cfg.applyEnv()
	cfg.fillDefaults()
	return cfg
}

func stateDirFromEnv() string {
	if d := os.Getenv("SAILMAKER_STATE_DIR"); d != "" {
		return d
	}
	return DefaultStateDir
}

func (c *Config) applyEnv() {
	env := os.Getenv
	c.setFromEnv(&c.StateDir, "stateDir", "SAILMAKER_STATE_DIR", env)
	c.setFromEnv(&c.Registry.Address, "registry.address", "SAILMAKER_REGISTRY", env)
	c.setFromEnv(&c.BuildKit.Address, "buildkit.address", "BUILDKIT_HOST", env)
	c.setFromEnv(&c.Debian.Mirror, "debian.mirror", "SAILMAKER_DEBIAN_MIRROR", env)
	c.setFromEnv(&c.Go.Proxy, "go.proxy", "SAILMAKER_GOPROXY", env)
	c.setFromEnv(&c.Go.SumDB, "go.sumdb", "SAILMAKER_GOSUMDB", env)
	c.setFromEnv(&c.Signing.Key, "signing.key", "SAILMAKER_SIGNING_KEY", env)
	c.setFromEnv(&c.Signing.AptKey, "signing.aptKey", "SAILMAKER_APT_KEY", env)
	c.setFromEnv(&c.Server.URL, "server.url", "SAILMAKER_SERVER", env)
	c.setFromEnv(&c.Server.Token, "server.token", "SAILMAKER_TOKEN", env)
	c.setFromEnv(&c.Server.Webhook.Secret, "server.webhook.secret", "SAILMAKER_WEBHOOK_SECRET", env)
	c.setFromEnv(&c.Packages.IstioctlRetention, "packages.istioctlRetention", "SAILMAKER_ISTIOCTL_RETENTION", env)
}

func (c *Config) fillDefaults() {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Registry.Address == "" {
		c.Registry.Address = DefaultRegistryAddr
	}
	if c.Registry.Root == "" {
		c.Registry.Root = filepath.Join(c.StateDir, "registry")
	}
	if c.BuildKit.Address == "" && len(c.BuildKit.Workers) == 0 {
		c.BuildKit.Address = "unix://" + filepath.Join(c.StateDir, "buildkitd", "buildkitd.sock")
	}
	c.Server.fillDefaults()
}

// Validate rejects settings that cannot work, instead of guessing.
func (c *Config) Validate() error {
	if !filepath.IsAbs(c.StateDir) {
		return c.settingErrorf("stateDir", "%q must be an absolute path", c.StateDir)
	}
	if strings.Contains(c.Registry.Address, "/") {
		return c.settingErrorf("registry.address", "%q must be host[:port], without a scheme or path", c.Registry.Address)
	}
	if err := c.validateBuildKit(); err != nil {
		return err
	}
	for i, m := range c.Git.Mirrors {
		if m.URL == "" || m.InsteadOf == "" {
			return fmt.Errorf("git.mirrors[%d]: url and insteadOf are both required", i)
		}
	}
	if err := c.Packages.validate(c); err != nil {
		return err
	}
	return c.Server.validate()
}

// AllowedRegistries is the allow-list image references are checked against.
func (c *Config) AllowedRegistries() []string {
	return append([]string{c.Registry.Address}, c.Registry.Allow...)
}

// RegistryInsecure says whether plain HTTP may be used for host: loopback
// always, others only with registry.insecure for the configured address.
func (c *Config) RegistryInsecure(host string) bool {
	if IsLoopback(host) {
		return true
	}
	return c.Registry.Insecure && host == c.Registry.Address
}

// IsLoopback reports whether host[:port] names this machine's loopback.
func IsLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RewriteGitURL applies the configured mirrors: the longest matching
// insteadOf prefix wins, as with git.
func (c *Config) RewriteGitURL(u string) string {
	best := -1
	for i, m := range c.Git.Mirrors {
		if strings.HasPrefix(u, m.InsteadOf) && (best < 0 || len(m.InsteadOf) > len(c.Git.Mirrors[best].InsteadOf)) {
			best = i
		}
	}
	if best < 0 {
		return u
	}
	m := c.Git.Mirrors[best]
	return m.URL + strings.TrimPrefix(u, m.InsteadOf)
}

// BuildKitDir is where the buildkitd that `dev up` starts keeps its state.
func (c *Config) BuildKitDir() string { return filepath.Join(c.StateDir, "buildkitd") }

// CacheDir is the content-addressed input cache.
func (c *Config) CacheDir() string { return filepath.Join(c.StateDir, "cache") }
