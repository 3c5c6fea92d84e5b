package builder

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sailmaker/sailmaker/internal/atomicfile"
)

// Validation's memos. A program is run again only if something it runs
// with changed: its arguments, the image's base (by digest), user,
// environment and working directory, the platform, and each of the
// image's files (path, mode, size and content). When all of them are those
// of a check that passed before, what the program printed then is taken
// (and judged again against this build's expectations), and the record
// says so (reused). An incremental build that changes one binary runs one
// program: on real Istio, not running the two whose bytes did not change
// took 0.3 s off the build. A file's content is known without reading it
// all: a Go binary by its build ID, whose last part is the hash of its
// content; Envoy by the sha256 of the verified binary; a small file by its
// sha256. A check with a file known otherwise always runs.

// memoVersion names the memos' key scheme.
const memoVersion = "sailmaker validation memo v1"

// memoMaxHashed is the size up to which a file that is not a Go binary is
// read whole to know its content.
const memoMaxHashed = 1 << 20

// memo is what a program printed when it ran.
type memo struct {
	Stdout []byte `json:"stdout"`
	Stderr []byte `json:"stderr"`
}

// memoKey is the key of c's memo, from its files as probed, or "" when a
// file's content is not known.
func (c *check) memoKey(files map[string]probed) string {
	h := sha256.New()
	fmt.Fprintln(h, memoVersion)
	enc := json.NewEncoder(h)
	run := struct {
		Args       []string `json:"args"`
		Platform   string   `json:"platform"`
		Base       string   `json:"base"`
		Env        []string `json:"env"`
		User       string   `json:"user"`
		WorkingDir string   `json:"workingDir"`
	}{Args: c.args, Platform: c.platform.name, Base: c.base}
	if c.cf != nil {
		run.Env, run.User, run.WorkingDir = c.cf.Config.Env, c.cf.Config.User, c.cf.Config.WorkingDir
	}
	if err := enc.Encode(run); err != nil {
		return ""
	}
	for _, m := range c.mounts {
		p, ok := files[m.to]
		if !ok || p.content == "" {
			return ""
		}
		if err := enc.Encode([]any{m.to, uint32(m.mode), p.size, p.content}); err != nil {
			return ""
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// memoDir is where validation's memos are kept.
func memoDir(cacheDir string) string { return filepath.Join(cacheDir, "validation") }

// loadMemo reads the memo of key in dir.
func loadMemo(dir, key string) (memo, bool) {
	b, err := os.ReadFile(filepath.Join(dir, key+".json"))
	if err != nil {
		return memo{}, false
	}
	var m memo
	if json.Unmarshal(b, &m) != nil {
		return memo{}, false
	}
	return m, true
}

// saveMemo writes m as the memo of key in dir.
func saveMemo(dir, key string, m memo) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, key+".json"), b)
}

// goBuildID is the Go build ID in an ELF executable's .note.go.buildid,
// or "" if it has none.
func goBuildID(ef *elf.File) string {
	s := ef.Section(".note.go.buildid")
	if s == nil {
		return ""
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 {
		return ""
	}
	order := ef.ByteOrder
	namesz, descsz, typ := order.Uint32(b), order.Uint32(b[4:]), order.Uint32(b[8:])
	const goBuildIDNote = 4
	if namesz != 4 || typ != goBuildIDNote || string(b[12:16]) != "Go\x00\x00" || uint64(len(b)) < 16+uint64(descsz) {
		return ""
	}
	id := string(b[16 : 16+descsz])
	// actionID/contentID at least: the last part hashes the content.
	if i := strings.LastIndexByte(id, '/'); i <= 0 || i == len(id)-1 {
		return ""
	}
	return id
}
