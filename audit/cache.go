package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/internal/atomicfile"
)

// maxCachedBlob is the largest blob kept in the cache. Manifests, configs
// and attestation documents are far smaller; image layers are never read.
const maxCachedBlob = 16 << 20

// blobCache keeps content by digest: in memory (least recently used
// first out) and, when dir is set, on disk as dir/sha256/<hex>. Content is
// checked against its digest on the way in and on the way back from disk,
// so a corrupt or tampered file is a miss, not an answer.
type blobCache struct {
	mem *lru.Cache[v1.Hash, []byte]
	dir string
	log logrus.FieldLogger
}

func newBlobCache(entries int, dir string, log logrus.FieldLogger) (*blobCache, error) {
	mem, err := lru.New[v1.Hash, []byte](entries)
	if err != nil {
		return nil, err
	}
	return &blobCache{mem: mem, dir: dir, log: log}, nil
}

func (c *blobCache) path(d v1.Hash) string {
	return filepath.Join(c.dir, d.Algorithm, d.Hex)
}

// get returns the content with digest d, if cached.
func (c *blobCache) get(d v1.Hash) ([]byte, bool) {
	if b, ok := c.mem.Get(d); ok {
		return b, true
	}
	if c.dir == "" || d.Algorithm != "sha256" {
		return nil, false
	}
	b, err := os.ReadFile(c.path(d))
	if err != nil {
		return nil, false
	}
	if !matches(d, b) {
		c.log.WithField("digest", d.String()).Warn("audit cache: removing a file whose content does not match its digest")
		_ = os.Remove(c.path(d))
		return nil, false
	}
	c.mem.Add(d, b)
	return b, true
}

// put keeps b as the content of d; content that does not hash to d is
// refused (and reported false).
func (c *blobCache) put(d v1.Hash, b []byte) bool {
	if !matches(d, b) {
		return false
	}
	if len(b) > maxCachedBlob {
		return true
	}
	c.mem.Add(d, b)
	if c.dir == "" {
		return true
	}
	if err := writeAtomic(c.path(d), b); err != nil {
		// A read-only state directory still lets an auditor read; the
		// memory cache serves this process.
		c.log.WithError(err).Debug("audit cache: not writing to disk")
	}
	return true
}

func matches(d v1.Hash, b []byte) bool {
	if d.Algorithm != "sha256" {
		return false
	}
	sum := sha256.Sum256(b)
	want, err := hex.DecodeString(d.Hex)
	return err == nil && bytes.Equal(sum[:], want)
}

func writeAtomic(path string, b []byte) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return atomicfile.Write(path, b)
}
