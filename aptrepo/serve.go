package aptrepo

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Handler serves the repository in dir read-only: GET and HEAD of its
// regular files (with Range and If-Modified-Since, which apt uses), nothing
// else. Directories are not listed; hidden names (the temporary files Build
// writes through), "..", backslashes and NUL are refused with 404, and the
// files are opened through an os.Root on dir, so no symlink leads out of it.
// Mount it under a prefix with http.StripPrefix.
func Handler(dir string) (http.Handler, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("apt repository %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("apt repository %s: not a directory", dir)
	}
	return &handler{dir: dir}, nil
}

type handler struct{ dir string }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: the repository is read-only", http.StatusMethodNotAllowed)
		return
	}
	rel, ok := cleanRequestPath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	root, err := os.OpenRoot(h.dir)
	if err != nil {
		http.Error(w, "repository unavailable", http.StatusServiceUnavailable)
		return
	}
	defer root.Close()
	// Missing, unreadable, or leading out of dir through a symlink: all
	// the same to the client.
	f, err := root.Open(rel)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType(rel))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(rel, "pool/") {
		// A pool file never changes (Build refuses that).
		w.Header().Set("Cache-Control", "public, max-age=86400")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, path.Base(rel), st.ModTime(), f)
}

// cleanRequestPath turns a URL path into a relative file path, refusing
// anything that is not a plain path to a file inside the repository.
func cleanRequestPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	rel := strings.TrimPrefix(p, "/")
	if rel == "" || strings.HasSuffix(rel, "/") {
		return "", false
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".") {
			return "", false
		}
	}
	return filepath.FromSlash(rel), true
}

func contentType(rel string) string {
	switch {
	case strings.HasSuffix(rel, ".deb"):
		return "application/vnd.debian.binary-package"
	case strings.HasSuffix(rel, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(rel, ".gpg"):
		return "application/pgp-signature"
	case strings.HasSuffix(rel, ".asc"):
		return "application/pgp-keys"
	}
	return "text/plain; charset=utf-8"
}
