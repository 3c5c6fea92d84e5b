package builder

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sailmaker/sailmaker/builder/layer"
	"github.com/sailmaker/sailmaker/recipes"
)

// An image's layer is the same bytes for the same files, so a build need
// not compress it again when its files have not changed: the layer is
// written in the work folder, which the next build takes again (see
// acquireWork), with a memo beside it that records what it holds. The
// memo's key covers every byte that goes into the layer: each file's path,
// mode, owner, size and sha256 (hashed while the layer was written), the
// layers' timestamp, and the sailmaker binary that wrote it (its Go build
// ID: another tar or gzip writer gives other bytes).

// layerMemoSuffix names a layer's memo: <layer>.tar.gz.json.
const layerMemoSuffix = ".json"

// Known says the sha256 of a file an image takes, by its path on this
// machine, when it is known without reading the file whole.
type Known func(path string) (string, bool)

// layerMemo is what a layer holds and its digests.
type layerMemo struct {
	Key    string  `json:"key"`
	Digest v1.Hash `json:"digest"`
	DiffID v1.Hash `json:"diffID"`
	Size   int64   `json:"size"`
}

// layerMemoFile is one file of a layer, as its memo's key covers it.
type layerMemoFile struct {
	Path   string `json:"path"`
	Mode   int64  `json:"mode"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// layerKey is the memo key of a layer of files with timestamp created, or
// "" when the running binary's build ID is not known.
func layerKey(created time.Time, files []layerMemoFile) string {
	w := writerID()
	if w == "" {
		return ""
	}
	b, err := json.Marshal(struct {
		Writer  string          `json:"writer"`
		Created time.Time       `json:"created"`
		Files   []layerMemoFile `json:"files"`
	}{w, created.UTC(), files})
	if err != nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var writerID = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	ef, err := elf.Open(exe)
	if err != nil {
		return ""
	}
	defer ef.Close()
	return goBuildID(ef)
})

// reuseLayer returns the layer the last build wrote at layerPath when its
// memo's key is that of img's files now (at srcs, their sha256 known) and
// the file is still the layer the memo describes; nil otherwise.
func reuseLayer(img recipes.Image, srcs []string, known Known, created time.Time, layerPath string) (v1.Layer, error) {
	files := make([]layerMemoFile, len(img.Files))
	for i, f := range img.Files {
		sum, ok := known(srcs[i])
		if !ok {
			return nil, nil
		}
		fi, err := os.Stat(srcs[i])
		if err != nil {
			return nil, nil
		}
		files[i] = layerMemoFile{Path: f.To, Mode: int64(f.FileMode()), Size: fi.Size(), SHA256: sum}
	}
	key := layerKey(created, files)
	if key == "" {
		return nil, nil
	}
	b, err := os.ReadFile(layerPath + layerMemoSuffix)
	if err != nil {
		return nil, nil
	}
	var m layerMemo
	if json.Unmarshal(b, &m) != nil || m.Key != key {
		return nil, nil
	}
	return layer.Reuse(layerPath, m.Digest, m.DiffID, m.Size)
}
