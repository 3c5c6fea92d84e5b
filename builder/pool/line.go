package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// Line is a recipe line: builds of one source repository and one minor
// version (istio 1.24.x) share most of their Go build cache, so they are
// routed to the same worker.
type Line struct {
	// Repo is the source's git URL without scheme, user and ".git"
	// (github.com/istio/istio).
	Repo string
	// Minor is the version's major.minor (1.24), or the whole version when
	// it has no minor.
	Minor string
}

// LineOf is the line of a recipe with source gitURL and version (a tag
// such as 1.24.2 or v1.24.2).
func LineOf(gitURL, version string) Line {
	repo := gitURL
	if i := strings.Index(repo, "://"); i >= 0 {
		repo = repo[i+3:]
	}
	// user@host/... and scp-like user@host:path
	if slash := strings.Index(repo, "/"); slash != 0 {
		head := repo
		if slash > 0 {
			head = repo[:slash]
		}
		if at := strings.LastIndex(head, "@"); at >= 0 {
			repo = repo[at+1:]
		}
		if !strings.Contains(gitURL, "://") {
			repo = strings.Replace(repo, ":", "/", 1)
		}
	}
	repo = strings.TrimSuffix(strings.TrimSuffix(repo, "/"), ".git")
	repo = strings.TrimPrefix(repo, "/")
	if host, rest, ok := strings.Cut(repo, "/"); ok {
		repo = strings.ToLower(host) + "/" + rest
	}
	v := strings.TrimPrefix(version, "v")
	parts := strings.SplitN(v, ".", 3)
	minor := v
	if len(parts) >= 2 {
		minor = parts[0] + "." + parts[1]
	}
	return Line{Repo: repo, Minor: minor}
}

// String is repo@minor: the routing key.
func (l Line) String() string { return l.Repo + "@" + l.Minor }

var nonRepoChars = regexp.MustCompile(`[^a-z0-9]+`)
var nonTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// CacheRepository is the line's repository under the registry cache's
// (istio-1a2b3c4d): the repository's last path element, readable, and a
// hash of the whole, so two repositories of one name do not share.
func (l Line) CacheRepository() string {
	base := l.Repo
	if i := strings.LastIndex(base, "/"); i >= 0 {
		base = base[i+1:]
	}
	base = strings.Trim(nonRepoChars.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if base == "" {
		base = "src"
	}
	if len(base) > 40 {
		base = base[:40]
	}
	sum := sha256.Sum256([]byte(l.Repo))
	return base + "-" + hex.EncodeToString(sum[:4])
}

// CacheTag is the line's tag in its cache repository (1.24).
func (l Line) CacheTag() string {
	t := strings.TrimLeft(nonTagChars.ReplaceAllString(l.Minor, "-"), ".-")
	if t == "" {
		t = "latest"
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
