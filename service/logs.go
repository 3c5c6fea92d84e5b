package service

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"time"
)

// logPoll is how often a followed log is checked for more.
const logPoll = 250 * time.Millisecond

// logHandler sends a build's log as plain text. While the build is queued or
// running it streams (chunked) what is written, until the build ends;
// ?follow=false sends only what is there. ?offset=N starts at byte N, to
// resume a stream.
func (s *Service) logHandler(w http.ResponseWriter, r *http.Request, _ *principal) {
	id := r.PathValue("id")
	b, err := s.db.get(r.Context(), id)
	if errors.Is(err, errNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no build "+strconv.Quote(id))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "follow" && k != "offset" {
			writeError(w, http.StatusBadRequest, "bad_request", "unknown query parameter "+strconv.Quote(k)+" (follow, offset)")
			return
		}
	}
	follow := true
	if v := q.Get("follow"); v != "" {
		if follow, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "follow must be true or false")
			return
		}
	}
	var off int64
	if v := q.Get("offset"); v != "" {
		if off, err = strconv.ParseInt(v, 10, 64); err != nil || off < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "offset must be a byte offset (0 or more)")
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Sailmaker-Build-State", string(b.State))
	rc := http.NewResponseController(w)
	path := s.LogPath(id)
	send := func() error {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
		n, err := io.Copy(w, f)
		off += n
		if n > 0 {
			_ = rc.Flush()
		}
		return err
	}
	if !follow || b.State.Final() {
		_ = send()
		return
	}
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	ticker := time.NewTicker(logPoll)
	defer ticker.Stop()
	for {
		if err := send(); err != nil {
			return
		}
		cur, err := s.db.get(r.Context(), id)
		if err != nil {
			return
		}
		if cur.State.Final() {
			// The log is complete before the build's state becomes final.
			_ = send()
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-ticker.C:
		}
	}
}
