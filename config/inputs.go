package config

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultGitSource is where the service takes recipes' sources from when
// server.inputs.git names nothing (besides the webhook's repositories).
const DefaultGitSource = "https://github.com/istio/"

// InputPolicy says where the inputs of a recipe the service builds may
// come from: nothing a caller sends may make the service read its own
// files or reach an internal URL. Recipes embedded in sailmaker are not
// subject to it; inline and stored ones are. The local CLI has no policy:
// its user can read what the recipe names anyway.
type InputPolicy struct {
	// Git are the URL prefixes a recipe's spec.source.git may start with,
	// besides the webhook's repositories (always allowed). Default:
	// https://github.com/istio/.
	// A file:// prefix here lets recipes clone repositories on the
	// service's own disk: name one only for a mirror that is meant for it.
	Git []string `yaml:"git"`
	// Artifacts are the http(s) URL prefixes input artifacts (Envoy) may be
	// downloaded from, besides the scheme and host of webhook.envoyURL
	// (always allowed). file:// is never allowed through the service.
	Artifacts []string `yaml:"artifacts"`
}

// effective is the policy with what the webhook's settings allow.
func (p InputPolicy) effective(w WebhookConfig) InputPolicy {
	out := InputPolicy{Git: append([]string(nil), p.Git...), Artifacts: append([]string(nil), p.Artifacts...)}
	if len(out.Git) == 0 {
		out.Git = []string{DefaultGitSource}
	}
	out.Git = append(out.Git, w.Repos...)
	if w.EnvoyURL != "" {
		if u, err := url.Parse(w.EnvoyURL); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
			out.Artifacts = append(out.Artifacts, u.Scheme+"://"+u.Host+"/")
		}
	}
	return out
}

func (p *InputPolicy) validate() error {
	for i, a := range p.Artifacts {
		u, err := url.Parse(a)
		switch {
		case err != nil:
			return fmt.Errorf("server.inputs.artifacts[%d] %q: %v", i, a, err)
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil:
			return fmt.Errorf("server.inputs.artifacts[%d] %q: must be an http:// or https:// URL with a host and no user (file:// is never served to the service's callers)", i, a)
		case !strings.HasSuffix(u.Path, "/"):
			return fmt.Errorf("server.inputs.artifacts[%d] %q: must end with / (a prefix like https://mirror matches https://mirror.evil.example too)", i, a)
		}
	}
	for i, g := range p.Git {
		if g == "" {
			return fmt.Errorf("server.inputs.git[%d]: empty", i)
		}
	}
	return nil
}

// CheckGit says whether a recipe the service builds may take its source
// from git.
func (p InputPolicy) CheckGit(git string) error {
	for _, prefix := range p.Git {
		if git == prefix || (strings.HasSuffix(prefix, "/") && strings.HasPrefix(git, prefix)) {
			return nil
		}
	}
	return fmt.Errorf("%s is not a source the service builds from (server.inputs.git allows %s): ask an admin to add it, or build it with the CLI", git, strings.Join(p.Git, ", "))
}

// CheckArtifact says whether the service may download an input artifact
// from raw: an http(s) URL under one of the allowed prefixes (same scheme,
// host and port; the path under the prefix's).
func (p InputPolicy) CheckArtifact(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme == "file" {
		return fmt.Errorf("%s: the service never reads files of its own host for a recipe (file:// works only with the local CLI)", raw)
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.User == nil {
		for _, a := range p.Artifacts {
			pu, err := url.Parse(a)
			if err == nil && pu.Scheme == u.Scheme && pu.Host == u.Host && strings.HasPrefix(u.EscapedPath(), pu.EscapedPath()) {
				return nil
			}
		}
	}
	allowed := "none"
	if len(p.Artifacts) > 0 {
		allowed = strings.Join(p.Artifacts, ", ")
	}
	return fmt.Errorf("%s is not a source the service downloads from (server.inputs.artifacts allows %s): ask an admin to add the mirror", raw, allowed)
}

// Policy is the input policy in force: server.inputs (or its default) and
// what the webhook's repositories and Envoy URL allow.
func (s ServerConfig) Policy() InputPolicy { return s.Inputs.effective(s.Webhook) }
