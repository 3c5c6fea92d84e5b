package config

import (
	"path/filepath"

	"github.com/sailmaker/sailmaker/packaging/istio"
)

// PackagesConfig says how the Debian packages builds make are published.
type PackagesConfig struct {
	// IstioctlRetention says which istioctl releases the multi-version
	// istioctl package keeps: all (the default), newest-per-minor=N (the
	// newest N of each MAJOR.MINOR line) or versions=1.24.2,1.23.4;
	// $SAILMAKER_ISTIOCTL_RETENTION.
	IstioctlRetention string `yaml:"istioctlRetention"`
	// AptDir is the apt repository `sailmaker serve` writes every package
	// into and serves under /apt/ (default <stateDir>/apt). It is signed
	// with signing.aptKey; without that key the service keeps no apt
	// repository.
	AptDir string `yaml:"aptDir"`
}

func (p *PackagesConfig) validate(c *Config) error {
	if _, err := istio.ParseRetention(p.IstioctlRetention); err != nil {
		return c.settingErrorf("packages.istioctlRetention", "%v", err)
	}
	if p.AptDir != "" && !filepath.IsAbs(p.AptDir) {
		return c.settingErrorf("packages.aptDir", "%q must be an absolute path", p.AptDir)
	}
	return nil
}

// Retention is packages.istioctlRetention, parsed (Validate checked it).
func (p *PackagesConfig) Retention() istio.Retention {
	r, _ := istio.ParseRetention(p.IstioctlRetention)
	return r
}

// AptRepoDir is the apt repository the service keeps: packages.aptDir, or
// <stateDir>/apt.
func (c *Config) AptRepoDir() string {
	if c.Packages.AptDir != "" {
		return c.Packages.AptDir
	}
	return filepath.Join(c.StateDir, "apt")
}
