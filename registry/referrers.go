package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// The OCI 1.1 referrers API, which distribution v3 does not serve, as a
// layer in front of it:
//
//   - GET /v2/<name>/referrers/<digest>[?artifactType=T] answers an image
//     index of the manifests whose subject is <digest> (filtered by
//     artifactType, saying so in OCI-Filters-Applied), from the index in
//     referrersindex.go;
//   - PUT /v2/<name>/manifests/<ref> of a manifest with a subject records it
//     in the index and answers OCI-Subject, which tells clients (ORAS,
//     go-containerregistry, cosign) not to maintain the sha256-<hex>
//     fallback tag;
//   - DELETE /v2/<name>/manifests/<digest> removes it from the index.
//
// Everything else goes to distribution untouched.

const (
	headerSubject        = "OCI-Subject"
	headerFiltersApplied = "OCI-Filters-Applied"
	// maxManifestBytes is distribution's own limit on a manifest PUT; a
	// bigger body is passed through for distribution to refuse.
	maxManifestBytes = 4 << 20
)

type referrersHandler struct {
	next  http.Handler
	index *referrersIndex
	log   logrus.FieldLogger
}

func (h *referrersHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	repo, kind, ref, ok := splitV2Path(r.URL.Path)
	switch {
	case ok && kind == "referrers":
		h.serveReferrers(w, r, repo, ref)
	case ok && kind == "manifests" && r.Method == http.MethodPut:
		h.putManifest(w, r, repo, ref)
	case ok && kind == "manifests" && r.Method == http.MethodDelete:
		h.deleteManifest(w, r, repo, ref)
	default:
		h.next.ServeHTTP(w, r)
	}
}

// splitV2Path splits /v2/<name>/<kind>/<ref>; ref has no slash, name may.
func splitV2Path(p string) (repo, kind, ref string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", "", false
	}
	head, ref := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j < 0 || ref == "" {
		return "", "", "", false
	}
	return head[:j], head[j+1:], ref, true
}

func validRepo(repo string) bool {
	_, err := reference.WithName(repo)
	return err == nil
}

func (h *referrersHandler) serveReferrers(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeRegistryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the referrers API answers GET and HEAD")
		return
	}
	if !validRepo(repo) {
		writeRegistryError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name")
		return
	}
	subject, err := digest.Parse(ref)
	if err != nil {
		writeRegistryError(w, http.StatusBadRequest, "DIGEST_INVALID", "invalid digest: "+err.Error())
		return
	}
	descs, err := h.index.list(r.Context(), repo, subject)
	if err != nil {
		h.log.WithError(err).WithFields(logrus.Fields{"repository": repo, "subject": subject.String()}).Error("listing referrers")
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", "listing the referrers failed")
		return
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := descs[:0]
		for _, d := range descs {
			if d.ArtifactType == at {
				kept = append(kept, d)
			}
		}
		descs = kept
		w.Header().Set(headerFiltersApplied, "artifactType")
	}
	if descs == nil {
		descs = []ocispec.Descriptor{}
	}
	body, err := json.Marshal(struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Manifests     []ocispec.Descriptor `json:"manifests"`
	}{2, ocispec.MediaTypeImageIndex, descs})
	if err != nil {
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// putManifest indexes a manifest with a subject around distribution's PUT:
// the entry is written first (so a crash never leaves a stored referrer
// unindexed), removed again if distribution refuses the manifest, and the
// 201 carries OCI-Subject.
func (h *referrersHandler) putManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
	if err != nil {
		writeRegistryError(w, http.StatusBadRequest, "MANIFEST_INVALID", "reading the manifest: "+err.Error())
		return
	}
	if len(body) > maxManifestBytes {
		r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		h.next.ServeHTTP(w, r)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	d, err := digest.Parse(ref)
	if err != nil {
		d = digest.Canonical.FromBytes(body) // a tag: distribution stores the sha256
	}
	subject, desc, ok := referrerOf(r.Header.Get("Content-Type"), body, d)
	if !ok || !validRepo(repo) || d.Validate() != nil {
		h.next.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	log := h.log.WithFields(logrus.Fields{"repository": repo, "subject": subject.String(), "digest": d.String()})
	unlock := h.index.lock(repo, d)
	defer unlock()
	if err := h.index.add(repo, subject, desc); err != nil {
		log.WithError(err).Error("recording a referrer")
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", "recording the referrer failed; nothing was stored")
		return
	}
	rec := &statusWriter{ResponseWriter: w, onHeader: func(hdr http.Header, code int) {
		if code == http.StatusCreated {
			hdr.Set(headerSubject, subject.String())
		}
	}}
	h.next.ServeHTTP(rec, r)
	if rec.status == http.StatusCreated {
		if got, err := digest.Parse(rec.Header().Get("Docker-Content-Digest")); err == nil && got != d {
			// Stored under another digest than the one indexed.
			desc.Digest = got
			if err := h.index.add(repo, subject, desc); err != nil {
				log.WithError(err).Error("recording a referrer")
			}
			h.undo(ctx, log, repo, subject, d)
		}
		return
	}
	h.undo(ctx, log, repo, subject, d)
}

// undo removes the write-ahead entry of a PUT distribution did not store,
// unless the manifest is there anyway (pushed before).
func (h *referrersHandler) undo(ctx context.Context, log logrus.FieldLogger, repo string, subject, d digest.Digest) {
	if ok, err := h.index.exists(context.WithoutCancel(ctx), repo, d); err != nil || ok {
		return // listing and the next start skip or remove it if it is gone
	}
	if err := h.index.remove(repo, subject, d); err != nil {
		log.WithError(err).Warn("removing the entry of a refused manifest")
	}
}

// deleteManifest removes a deleted manifest from the index. A tag delete
// leaves the manifest, and the index, as they are.
func (h *referrersHandler) deleteManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	d, err := digest.Parse(ref)
	if err != nil || !validRepo(repo) {
		h.next.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	unlock := h.index.lock(repo, d)
	defer unlock()
	mt, payload, ok, err := h.index.stored(ctx, repo, d)
	if err != nil || !ok {
		h.next.ServeHTTP(w, r)
		return
	}
	subject, _, ok := referrerOf(mt, payload, d)
	rec := &statusWriter{ResponseWriter: w}
	h.next.ServeHTTP(rec, r)
	if !ok || rec.status != http.StatusAccepted {
		return
	}
	if err := h.index.remove(repo, subject, d); err != nil {
		// The listing skips it (the manifest is gone); the next start
		// removes it.
		h.log.WithError(err).WithFields(logrus.Fields{"repository": repo, "digest": d.String()}).Warn("removing a deleted referrer from the index")
	}
}

// statusWriter records the status and lets onHeader add headers before
// they are sent.
type statusWriter struct {
	http.ResponseWriter
	status   int
	onHeader func(http.Header, int)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if w.onHeader != nil {
			w.onHeader(w.Header(), code)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type readCloser struct {
	io.Reader
	io.Closer
}

// writeRegistryError answers in the distribution-spec error format.
func writeRegistryError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
