package registry

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DockerConfigEnv names the directory of the docker config whose
// credentials sailmaker uses, for its own registry access and for
// buildkitd's pulls through sailmaker's BuildKit session.
const DockerConfigEnv = "DOCKER_CONFIG"

// DockerConfigDir is the directory holding the docker config.json that
// credentials come from ($DOCKER_CONFIG, else ~/.docker), and how it was
// chosen, to be named in errors.
func DockerConfigDir() (dir, origin string) {
	if d := os.Getenv(DockerConfigEnv); d != "" {
		return d, "$" + DockerConfigEnv
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "~"
	}
	return filepath.Join(home, ".docker"), "the default, $" + DockerConfigEnv + " unset"
}

// AuthError is a registry's refusal (401 or 403) of sailmaker's or
// buildkitd's credentials for a registry. Its message says where the
// credentials were looked for and how to give them; it never holds them.
type AuthError struct {
	// Registry is the registry's host[:port].
	Registry string
	// Status is the HTTP status (401 or 403).
	Status int
	Err    error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%v; %s", e.Err, CredentialsHint(e.Registry, e.Status))
}

func (e *AuthError) Unwrap() error { return e.Err }

// CredentialsHint says, in one line, what to do when host refused access
// with status (401: no or wrong credentials; 403: not allowed).
func CredentialsHint(host string, status int) string {
	dir, origin := DockerConfigDir()
	what := "needs credentials"
	if status == http.StatusForbidden {
		what = "refused access with the credentials given"
	}
	return fmt.Sprintf("the registry %s %s: sailmaker and buildkitd read them from the docker config %s (%s): add %s to its \"auths\", e.g. `crane auth login %s -u USER --password-stdin` with %s=%s, or point %s at a directory whose config.json has them",
		host, what, filepath.Join(dir, "config.json"), origin, host, host, DockerConfigEnv, dir, DockerConfigEnv)
}

// explainAuth makes a registry's 401 or 403 for host an *AuthError; other
// errors are returned as they are.
func explainAuth(err error, host string) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		return &AuthError{Registry: host, Status: terr.StatusCode, Err: err}
	}
	return err
}

// ExplainBuildKitAuth makes an error of a BuildKit solve that a registry
// refused (buildkitd could not pull or push for want of credentials) an
// *AuthError naming the registry, when the error says which; other errors
// are returned as they are.
func ExplainBuildKitAuth(err error) error {
	if err == nil {
		return nil
	}
	var aerr *AuthError
	if errors.As(err, &aerr) {
		return err
	}
	msg := err.Error()
	status := 0
	switch {
	case strings.Contains(msg, "401 Unauthorized"), strings.Contains(msg, "failed to authorize"), strings.Contains(msg, "authentication required"):
		status = http.StatusUnauthorized
	case strings.Contains(msg, "403 Forbidden"):
		status = http.StatusForbidden
	default:
		return err
	}
	host := registryIn(msg)
	if host == "" {
		return err
	}
	return &AuthError{Registry: host, Status: status, Err: err}
}

// registryIn finds the registry a BuildKit error speaks of: the host of the
// first http(s) URL in it, else the registry of the image reference after
// "source metadata for ".
func registryIn(msg string) string {
	for _, scheme := range []string{"https://", "http://"} {
		if i := strings.Index(msg, scheme); i >= 0 {
			rest := msg[i+len(scheme):]
			if j := strings.IndexAny(rest, "/ \"'"); j > 0 {
				return rest[:j]
			}
		}
	}
	const marker = "source metadata for "
	if i := strings.Index(msg, marker); i >= 0 {
		rest := msg[i+len(marker):]
		if j := strings.IndexByte(rest, '/'); j > 0 && !strings.ContainsAny(rest[:j], " \"'") {
			return rest[:j]
		}
	}
	return ""
}
