package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Defaults of the build service.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultConcurrency   = 1
	DefaultBuildTimeout  = 2 * time.Hour
	DefaultRetries       = 1
	DefaultShutdownGrace = 30 * time.Second
	DefaultMaxBodyBytes  = 1 << 20
	DefaultTagPattern    = `^1\.\d+\.\d+$`
)

// Roles a service token can have. admin can do everything a maintainer can,
// a maintainer everything an auditor can; ci is for the webhook only.
const (
	RoleAdmin      = "admin"
	RoleMaintainer = "maintainer"
	RoleAuditor    = "auditor"
	RoleCI         = "ci"
)

// ServerConfig is the build service (`sailmaker serve`) and how the CLI
// reaches it.
type ServerConfig struct {
	// URL is the service the CLI talks to ($SAILMAKER_SERVER, --server).
	// Empty: the CLI builds locally.
	URL string `yaml:"url"`
	// Token is the bearer token the CLI sends ($SAILMAKER_TOKEN).
	Token string `yaml:"token"`
	// Listen is the service's address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Tokens the service accepts, hashed. With none, a loopback service lets
	// every caller act as admin, and any other address is refused.
	Tokens []ServerToken `yaml:"tokens"`
	// Concurrency is how many builds run at once. Default 1.
	Concurrency int `yaml:"concurrency"`
	// BuildTimeout bounds one attempt of a build. Default 2h.
	BuildTimeout time.Duration `yaml:"buildTimeout"`
	// Retries is how many times a build interrupted by a crash of the
	// service is started again. Default 1; 0 marks it failed at once.
	Retries *int `yaml:"retries"`
	// ShutdownGrace is how long running builds may go on after SIGTERM
	// before they are cancelled (and queued again for the next start).
	// Default 30s.
	ShutdownGrace time.Duration `yaml:"shutdownGrace"`
	// MaxBodyBytes bounds request bodies. Default 1 MiB.
	MaxBodyBytes int64         `yaml:"maxBodyBytes"`
	Webhook      WebhookConfig `yaml:"webhook"`
	// Inputs says where the recipes the service builds may take their
	// source and artifacts from.
	Inputs InputPolicy `yaml:"inputs"`
}

// ServerToken is one accepted bearer token: its name (recorded as the actor
// of what it does), its role, and the hex sha256 of the token.
type ServerToken struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`
	SHA256 string `yaml:"sha256"`
}

// WebhookConfig is CI's upstream-tag webhook.
type WebhookConfig struct {
	// Secret is the HMAC-SHA256 key of the signatures
	// ($SAILMAKER_WEBHOOK_SECRET). Without it the webhook accepts nothing.
	Secret string `yaml:"secret"`
	// Repos are the upstream git URLs whose tags are built, as they go into
	// the recipes (git mirrors apply when fetching).
	Repos []string `yaml:"repos"`
	// TagPattern selects the tags that are built. Default ^1\.\d+\.\d+$.
	TagPattern string `yaml:"tagPattern"`
	// Go, if set, is the Go version of the builder image new recipes use,
	// instead of what go.mod says (upstream often builds with a newer Go).
	Go string `yaml:"go"`
	// EnvoyURL is the Envoy tarball's URL template for new recipes
	// (default: the recipes' internal mirror URL).
	EnvoyURL string `yaml:"envoyURL"`
	// EnvoySHA256 maps a PROXY_REPO_SHA to the confirmed sha256 of its
	// Envoy tarball. A new recipe whose PROXY_REPO_SHA is not here keeps
	// its sha256 unconfirmed, and its build fails saying so.
	EnvoySHA256 map[string]string `yaml:"envoySHA256"`
}

func (s *ServerConfig) fillDefaults() {
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.BuildTimeout == 0 {
		s.BuildTimeout = DefaultBuildTimeout
	}
	if s.Retries == nil {
		n := DefaultRetries
		s.Retries = &n
	}
	if s.ShutdownGrace == 0 {
		s.ShutdownGrace = DefaultShutdownGrace
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.Webhook.TagPattern == "" {
		s.Webhook.TagPattern = DefaultTagPattern
	}
}

func (s *ServerConfig) validate() error {
	if s.Concurrency < 1 {
		return fmt.Errorf("server.concurrency %d: must be at least 1", s.Concurrency)
	}
	if s.BuildTimeout < 0 || s.ShutdownGrace < 0 || s.MaxBodyBytes < 0 {
		return errors.New("server.buildTimeout, shutdownGrace and maxBodyBytes must not be negative")
	}
	if s.Retries != nil && *s.Retries < 0 {
		return fmt.Errorf("server.retries %d: must not be negative", *s.Retries)
	}
	names := map[string]bool{}
	for i, t := range s.Tokens {
		switch {
		case t.Name == "":
			return fmt.Errorf("server.tokens[%d]: name is required", i)
		case names[t.Name]:
			return fmt.Errorf("server.tokens[%d]: the name %q is used twice", i, t.Name)
		case t.Role != RoleAdmin && t.Role != RoleMaintainer && t.Role != RoleAuditor && t.Role != RoleCI:
			return fmt.Errorf("server.tokens[%d] (%s): role %q: must be admin, maintainer, auditor or ci", i, t.Name, t.Role)
		}
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("server.tokens[%d] (%s): sha256 must be the 64 hex digits of the token's sha256 (`sailmaker token new` prints it)", i, t.Name)
		}
		names[t.Name] = true
	}
	if _, err := regexp.Compile(s.Webhook.TagPattern); err != nil {
		return fmt.Errorf("server.webhook.tagPattern: %w", err)
	}
	return s.Inputs.validate()
}
