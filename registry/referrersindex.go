package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// The referrers index maps (repository, subject) to the descriptors of the
// manifests whose subject it is. It lives beside distribution's content, one
// file per referrer:
//
//	<root>/referrers/repositories/<repo>/_subjects/<alg>/<hex>/<alg>-<hex>.json
//
// (repository path components never start with "_", so no repository can
// collide with "_subjects"). One file per referrer makes concurrent pushes
// independent: each writes its own file with a rename, nothing is read,
// changed and written back. The stored manifests are the truth; the index
// is derived from them:
//
//   - an entry is written before the manifest is handed to distribution,
//     and removed again if distribution refuses it; a crash in between
//     leaves an entry for a manifest that does not exist, so
//   - listing skips entries whose manifest is not in the repository, and
//     opening the index removes them;
//   - when the index is missing (first start, or lost) it is rebuilt from
//     every stored manifest before the registry serves; deleting
//     <root>/referrers rebuilds it at the next start.
const (
	referrersDir     = "referrers"
	referrersVersion = 1
	subjectsDir      = "_subjects"
	tmpPrefix        = ".tmp-"
)

// referrersIndex is the on-disk index and the distribution storage it is
// derived from.
type referrersIndex struct {
	dir   string
	store distribution.Namespace
	log   logrus.FieldLogger
	// locks serialise the write-ahead, the manifest PUT or DELETE and the
	// index update for one repository@referrer, so that a PUT and a DELETE
	// of the same manifest cannot leave the index saying the opposite of
	// storage. Striped: a bounded set of mutexes, keyed by a hash.
	locks [64]sync.Mutex
}

// indexMarker is written once a rebuild has indexed every stored manifest.
type indexMarker struct {
	Version int `json:"version"`
}

// openReferrersIndex opens the index under root, rebuilding it from the
// stored manifests when it is missing and dropping entries for manifests
// that are gone.
func openReferrersIndex(ctx context.Context, root string, log logrus.FieldLogger) (*referrersIndex, error) {
	driver, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		return nil, fmt.Errorf("opening the registry storage for the referrers index: %w", err)
	}
	ns, err := storage.NewRegistry(ctx, driver)
	if err != nil {
		return nil, fmt.Errorf("opening the registry storage for the referrers index: %w", err)
	}
	x := &referrersIndex{dir: filepath.Join(root, referrersDir), store: ns, log: log}
	if err := os.MkdirAll(filepath.Join(x.dir, "repositories"), 0o755); err != nil {
		return nil, fmt.Errorf("creating the referrers index: %w", err)
	}
	if !x.complete() {
		n, err := x.rebuild(ctx)
		if err != nil {
			return nil, fmt.Errorf("rebuilding the referrers index from the stored manifests: %w", err)
		}
		log.WithFields(logrus.Fields{"dir": x.dir, "referrers": n}).Info("referrers index rebuilt from the stored manifests")
	}
	n, err := x.prune(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking the referrers index: %w", err)
	}
	if n > 0 {
		log.WithFields(logrus.Fields{"dir": x.dir, "removed": n}).Info("referrers index: removed entries of manifests that are gone")
	}
	return x, nil
}

func (x *referrersIndex) markerPath() string { return filepath.Join(x.dir, "index.json") }

func (x *referrersIndex) complete() bool {
	b, err := os.ReadFile(x.markerPath())
	if err != nil {
		return false
	}
	var m indexMarker
	return json.Unmarshal(b, &m) == nil && m.Version == referrersVersion
}

// lock locks repo@referrer and returns the unlock.
func (x *referrersIndex) lock(repo string, referrer digest.Digest) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(repo + "@" + referrer.String()))
	m := &x.locks[h.Sum32()%uint32(len(x.locks))]
	m.Lock()
	return m.Unlock
}

// subjectDir is the directory of subject's entries in repo. repo must be a
// valid repository name and subject a valid digest (both checked by the
// callers), so neither can leave the index directory.
func (x *referrersIndex) subjectDir(repo string, subject digest.Digest) string {
	return filepath.Join(x.dir, "repositories", filepath.FromSlash(repo), subjectsDir, subject.Algorithm().String(), subject.Encoded())
}

func entryName(referrer digest.Digest) string {
	return referrer.Algorithm().String() + "-" + referrer.Encoded() + ".json"
}

// add records desc as a referrer of subject in repo, durably.
func (x *referrersIndex) add(repo string, subject digest.Digest, desc ocispec.Descriptor) error {
	b, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	dir := x.subjectDir(repo, subject)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("recording a referrer of %s@%s: %w", repo, subject, err)
	}
	if err := writeFileAtomic(dir, entryName(desc.Digest), b); err != nil {
		return fmt.Errorf("recording a referrer of %s@%s: %w", repo, subject, err)
	}
	return nil
}

// remove drops referrer from subject's entries in repo; a missing entry is
// not an error.
func (x *referrersIndex) remove(repo string, subject, referrer digest.Digest) error {
	dir := x.subjectDir(repo, subject)
	if err := os.Remove(filepath.Join(dir, entryName(referrer))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s from the referrers of %s@%s: %w", referrer, repo, subject, err)
	}
	_ = os.Remove(dir) // only if empty
	return nil
}

// list returns the referrers of subject in repo whose manifests are in the
// repository, ordered by digest.
func (x *referrersIndex) list(ctx context.Context, repo string, subject digest.Digest) ([]ocispec.Descriptor, error) {
	dir := x.subjectDir(repo, subject)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the referrers of %s@%s: %w", repo, subject, err)
	}
	out := []ocispec.Descriptor{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("reading the referrers of %s@%s: %w", repo, subject, err)
		}
		var d ocispec.Descriptor
		if err := json.Unmarshal(b, &d); err != nil || d.Digest.Validate() != nil {
			x.log.WithFields(logrus.Fields{"file": filepath.Join(dir, e.Name())}).Warn("referrers index: skipping a damaged entry (restart the registry to rebuild it)")
			continue
		}
		ok, err := x.exists(ctx, repo, d.Digest)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

func (x *referrersIndex) manifests(ctx context.Context, repo string) (distribution.ManifestService, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, err
	}
	r, err := x.store.Repository(ctx, named)
	if err != nil {
		return nil, err
	}
	return r.Manifests(ctx)
}

// exists says whether repo has the manifest d.
func (x *referrersIndex) exists(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	ms, err := x.manifests(ctx, repo)
	if err != nil {
		return false, fmt.Errorf("reading repository %s: %w", repo, err)
	}
	ok, err := ms.Exists(ctx, d)
	if err != nil {
		return false, fmt.Errorf("checking %s@%s: %w", repo, d, err)
	}
	return ok, nil
}

// stored reads repo's manifest d from storage: its media type and bytes.
// ok is false when the repository does not have it.
func (x *referrersIndex) stored(ctx context.Context, repo string, d digest.Digest) (mediaType string, payload []byte, ok bool, err error) {
	ms, err := x.manifests(ctx, repo)
	if err != nil {
		return "", nil, false, err
	}
	m, err := ms.Get(ctx, d)
	if err != nil {
		var unknown distribution.ErrManifestUnknownRevision
		if errors.As(err, &unknown) {
			return "", nil, false, nil
		}
		return "", nil, false, err
	}
	mediaType, payload, err = m.Payload()
	return mediaType, payload, err == nil, err
}

// rebuild indexes every stored manifest that has a subject, then marks the
// index complete.
func (x *referrersIndex) rebuild(ctx context.Context) (int, error) {
	repos, ok := x.store.(distribution.RepositoryEnumerator)
	if !ok {
		return 0, errors.New("the registry storage cannot list its repositories")
	}
	n := 0
	err := repos.Enumerate(ctx, func(repo string) error {
		ms, err := x.manifests(ctx, repo)
		if err != nil {
			return err
		}
		en, ok := ms.(distribution.ManifestEnumerator)
		if !ok {
			return fmt.Errorf("the registry storage cannot list the manifests of %s", repo)
		}
		err = en.Enumerate(ctx, func(d digest.Digest) error {
			mt, payload, ok, err := x.stored(ctx, repo, d)
			if err != nil {
				x.log.WithError(err).WithFields(logrus.Fields{"repository": repo, "digest": d.String()}).Warn("referrers index: cannot read a stored manifest; left out")
				return nil
			}
			if !ok {
				return nil
			}
			subject, desc, ok := referrerOf(mt, payload, d)
			if !ok {
				return nil
			}
			if err := x.add(repo, subject, desc); err != nil {
				return err
			}
			n++
			return nil
		})
		if isPathNotFound(err) {
			return nil // a repository without manifests
		}
		return err
	})
	// A registry that has never stored anything has no repositories
	// directory yet: nothing to index.
	if err != nil && !isPathNotFound(err) {
		return n, err
	}
	b, _ := json.Marshal(indexMarker{Version: referrersVersion})
	if err := writeFileAtomic(x.dir, filepath.Base(x.markerPath()), b); err != nil {
		return n, err
	}
	return n, nil
}

func isPathNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

// prune removes entries whose manifest is not in its repository any more
// (a crash between the write-ahead and distribution's answer, a manifest
// removed by garbage collection) and temporary files of interrupted writes.
func (x *referrersIndex) prune(ctx context.Context) (int, error) {
	base := filepath.Join(x.dir, "repositories")
	n := 0
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			n++
			return os.Remove(p)
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		repo, _, ok := strings.Cut(filepath.ToSlash(rel), "/"+subjectsDir+"/")
		alg, hex, ok2 := strings.Cut(strings.TrimSuffix(e.Name(), ".json"), "-")
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
		if !ok || !ok2 || d.Validate() != nil || !validRepo(repo) {
			return nil // not ours
		}
		exists, err := x.exists(ctx, repo, d)
		if err != nil {
			// Listing checks it again; so does the next start.
			x.log.WithError(err).WithFields(logrus.Fields{"file": p}).Warn("referrers index: cannot check an entry")
			return nil
		}
		if !exists {
			n++
			if err := os.Remove(p); err != nil {
				return err
			}
			_ = os.Remove(filepath.Dir(p))
		}
		return nil
	})
	return n, err
}

// referrerOf reads the fields of a manifest (image or index) that the
// referrers API lists: it returns the subject and the descriptor of the
// manifest as a referrer, or ok=false when it has no valid subject.
// mediaType is the Content-Type it was pushed with, used when the manifest
// does not say its own.
func referrerOf(mediaType string, payload []byte, d digest.Digest) (digest.Digest, ocispec.Descriptor, bool) {
	var m struct {
		MediaType    string `json:"mediaType"`
		ArtifactType string `json:"artifactType"`
		Config       *struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Subject     *ocispec.Descriptor `json:"subject"`
		Annotations map[string]string   `json:"annotations"`
	}
	if err := json.Unmarshal(payload, &m); err != nil || m.Subject == nil || m.Subject.Digest.Validate() != nil {
		return "", ocispec.Descriptor{}, false
	}
	desc := ocispec.Descriptor{
		MediaType:    m.MediaType,
		Digest:       d,
		Size:         int64(len(payload)),
		ArtifactType: m.ArtifactType,
		Annotations:  m.Annotations,
	}
	if desc.MediaType == "" {
		desc.MediaType = mediaType
	}
	// An image manifest without artifactType is listed with its config's
	// media type (distribution-spec, "Listing Referrers").
	if desc.ArtifactType == "" && m.Config != nil {
		desc.ArtifactType = m.Config.MediaType
	}
	return m.Subject.Digest, desc, true
}

// writeFileAtomic writes dir/name by a rename of a synced temporary file,
// so that readers see the old content or the new, never a part.
func writeFileAtomic(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, a no-op
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
