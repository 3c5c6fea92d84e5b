package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/config"
)

// aptPrefix is where `sailmaker serve` serves its apt repository.
const aptPrefix = "/apt/"

// withAptRepo serves the service's apt repository (cfg.AptRepoDir) under
// /apt/ in front of next, when signing.aptKey is set (without a key the
// service keeps no repository). GET and HEAD only, no token: what apt
// downloads is checked against the Release file signed with the key, and
// the repository holds nothing secret. Everything else goes to next.
func withAptRepo(cfg *config.Config, next http.Handler, log logrus.FieldLogger) (http.Handler, error) {
	if cfg.Signing.AptKey == "" {
		log.Info("no apt repository: signing.aptKey ($SAILMAKER_APT_KEY) is not set, so builds publish their Debian packages to the registry only")
		return next, nil
	}
	dir := cfg.AptRepoDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making the apt repository %s: %w", dir, err)
	}
	h, err := aptrepo.Handler(dir)
	if err != nil {
		return nil, err
	}
	log.WithField("dir", dir).Info("serving the apt repository at " + aptPrefix + " (read-only, no token)")
	mux := http.NewServeMux()
	mux.Handle(aptPrefix, http.StripPrefix(aptPrefix[:len(aptPrefix)-1], h))
	mux.Handle("/", next)
	return mux, nil
}
