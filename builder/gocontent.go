package builder

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
)

// A Go binary's build ID ends with a hash of its own content: after
// linking, the go command hashes the file with every occurrence of the
// build ID (and the GNU build ID's bytes, when there is one) read as
// zeros, and writes the first 15 bytes of that sha256, base64 (URL
// alphabet, no padding), as the ID's last part. goContent computes that
// hash again for a file on this machine, so that a file the last build
// left in the work folder can stand for a make result that has the same
// build ID: the ID it claims is checked against the bytes it has.

// goContentBuf is how much of a file goContent reads at a time.
const goContentBuf = 1 << 20

// goContent reads the ELF file at p and returns its Go build ID and
// whether its content is what the ID's last part says. A file that is not
// a Go ELF binary, or has no build ID, gives "" and false.
func goContent(p string) (id string, ok bool, err error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", false, nil
	}
	if id = goBuildID(ef); id == "" {
		return "", false, nil
	}
	var skip [2]int64
	if s := ef.Section(".note.gnu.build-id"); s != nil && s.Size > 16 {
		skip = [2]int64{int64(s.Offset) + 16, int64(s.Offset + s.Size)}
	}
	content, err := hashGoContent(f, id, skip)
	if err != nil {
		return "", false, err
	}
	want := id[strings.LastIndexByte(id, '/')+1:]
	return id, base64.RawURLEncoding.EncodeToString(content[:15]) == want, nil
}

// hashGoContent returns the sha256 the go command gives r's content: the
// bytes in skip (from, to) read as zeros, then every occurrence of id,
// from the left and not overlapping, read as zeros.
func hashGoContent(r io.Reader, id string, skip [2]int64) (content [32]byte, err error) {
	idb := []byte(id)
	zeros := make([]byte, len(idb))
	hc := sha256.New()
	// buf[:pending] was read but not yet hashed for content: it may hold
	// the start of an occurrence that the next read completes.
	buf := make([]byte, len(idb)+goContentBuf)
	pending := 0
	var off int64 // the file offset of buf[pending]
	for {
		n, rerr := io.ReadFull(r, buf[pending:])
		if rerr != nil && rerr != io.EOF && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return content, rerr
		}
		chunk := buf[pending : pending+n]
		// Zero what falls in skip.
		if from, to := max(skip[0], off), min(skip[1], off+int64(n)); from < to {
			clear(chunk[from-off : to-off])
		}
		end := pending + n
		last := rerr != nil
		start := 0
		for {
			i := bytes.Index(buf[start:end], idb)
			if i < 0 {
				break
			}
			hc.Write(buf[start : start+i])
			hc.Write(zeros)
			start += i + len(idb)
		}
		// Keep the tail that could begin an occurrence, unless the file
		// has ended.
		safe := end
		if !last {
			safe = max(start, end-(len(idb)-1))
		}
		hc.Write(buf[start:safe])
		pending = copy(buf, buf[safe:end])
		off += int64(n)
		if last {
			break
		}
	}
	hc.Sum(content[:0])
	return content, nil
}
