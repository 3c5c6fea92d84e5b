package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/store"
)

// When the state directory's disk fills up, builds fail (their work
// files, logs and records live there), and so would recording that they
// failed. The service keeps a reserve: a file of ReserveBytes in the state
// directory, given back to the file system when a write that records a
// build's end finds no room, so that the build still reaches its final
// state with its real cause. (CockroachDB keeps an "emergency ballast"
// file for the same reason.) If even that is not enough, the record is
// kept in memory, served as it is, and written when there is room again.
//
// While the disk is full the service says so (on /readyz, in its log),
// takes no build from the queue, and answers new build requests 507 if
// it cannot queue them; once there is room again it makes its reserve
// again and goes on.

// ReserveBytes is the size of the state directory's reserve file.
const ReserveBytes = 8 << 20

// ReserveFile is the reserve's name in the state directory.
const ReserveFile = "disk-reserve"

// diskCheckInterval is how often a full disk is looked at again.
const diskCheckInterval = 2 * time.Second

// diskGuard watches the state directory's disk.
type diskGuard struct {
	dir  string
	size int64
	log  logrus.FieldLogger

	mu    sync.Mutex
	full  bool      // a write failed for lack of room, and there is no room again yet
	since time.Time // when
	cause string    // what failed
}

func newDiskGuard(dir string, log logrus.FieldLogger) *diskGuard {
	return &diskGuard{dir: dir, size: ReserveBytes, log: log}
}

func (g *diskGuard) reservePath() string { return filepath.Join(g.dir, ReserveFile) }

// free is the room left on the state directory's file system, and its size.
func (g *diskGuard) free() (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// makeReserve creates the reserve file if it is not there and there is
// room for it with as much again to spare.
func (g *diskGuard) makeReserve() error {
	if fi, err := os.Stat(g.reservePath()); err == nil && fi.Size() >= g.size {
		return nil
	}
	free, _, err := g.free()
	if err != nil {
		return err
	}
	if free < uint64(2*g.size) {
		return fmt.Errorf("%s free, not enough for the reserve (%s) and as much again", output.Bytes(int64(free)), output.Bytes(g.size))
	}
	f, err := os.OpenFile(g.reservePath(), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, g.size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		// A file system without fallocate: write the bytes.
		_, err = f.Write(make([]byte, g.size))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(g.reservePath())
		return fmt.Errorf("making the disk reserve %s: %w", g.reservePath(), err)
	}
	return nil
}

// release gives the reserve back to the file system; it says whether
// there was one.
func (g *diskGuard) release() bool {
	err := os.Remove(g.reservePath())
	if err == nil {
		g.log.WithField("reserve", g.reservePath()).Warn("the state directory's disk is full: gave back its reserve to record the end of builds")
	}
	return err == nil
}

// noteFull records that a write failed for lack of room: the log says so
// (once for each time the disk fills), /readyz says so until there is
// room again.
func (g *diskGuard) noteFull(what string, err error) {
	g.mu.Lock()
	first := !g.full
	if first {
		g.full, g.since = true, time.Now()
	}
	g.cause = what + ": " + err.Error()
	g.mu.Unlock()
	if first {
		free, total, _ := g.free()
		g.log.WithFields(logrus.Fields{"dir": g.dir, "free": output.Bytes(int64(free)), "size": output.Bytes(int64(total)), "failed": what}).WithError(err).
			Error("the state directory's disk is full: builds fail and none is started until there is room")
	}
}

// isFull says whether the disk was found full and has no room again yet.
func (g *diskGuard) isFull() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.full
}

// fullNow says whether the disk is full: found so, or with less room left
// than the reserve.
func (g *diskGuard) fullNow() bool {
	if g.isFull() {
		return true
	}
	free, _, err := g.free()
	return err == nil && free < uint64(g.size)
}

// check is /readyz's look at the disk: an error while it is full, or has
// less room than the reserve.
func (g *diskGuard) check(context.Context) error {
	free, total, err := g.free()
	if err != nil {
		return fmt.Errorf("the state directory %s: %w", g.dir, err)
	}
	g.mu.Lock()
	full, cause, since := g.full, g.cause, g.since
	g.mu.Unlock()
	switch {
	case full:
		return fmt.Errorf("the state directory's disk is full (%s: %s free of %s) since %s: %s; free space there: builds wait in the queue until then",
			g.dir, output.Bytes(int64(free)), output.Bytes(int64(total)), since.UTC().Format(time.RFC3339), cause)
	case free < uint64(g.size):
		return fmt.Errorf("the state directory's disk is nearly full (%s: %s free of %s): free space there", g.dir, output.Bytes(int64(free)), output.Bytes(int64(total)))
	}
	return nil
}

// recover looks at a full disk again: once there is room for the reserve
// and as much again, it makes the reserve and says the disk has room. It
// reports whether the disk has room now.
func (g *diskGuard) recover() bool {
	reserved := g.makeReserve() == nil
	free, total, err := g.free()
	if err != nil {
		return !g.isFull()
	}
	room := reserved && free >= uint64(g.size)
	if !room && !g.isFull() {
		// Nearly full, though no write has failed yet: a build would.
		g.noteFull("looking at its free space", fmt.Errorf("%s free of %s: not enough for a build and the %s reserve the service keeps to record builds' ends", output.Bytes(int64(free)), output.Bytes(int64(total)), output.Bytes(g.size)))
	}
	if !room {
		return false
	}
	g.mu.Lock()
	was := g.full
	g.full = false
	g.mu.Unlock()
	if was {
		g.log.WithFields(logrus.Fields{"dir": g.dir, "free": output.Bytes(int64(free)), "size": output.Bytes(int64(total))}).Warn("the state directory's disk has room again: builds are taken from the queue again")
	}
	return true
}

// saveRecord writes a change to a build's record that must not be lost
// (its end, a cancel). When the disk is full it gives back the reserve
// and tries again; failing that, it keeps the change in memory (served as
// the build's record, written later by watchDisk) and returns the record
// as changed.
func (s *Service) saveRecord(ctx context.Context, id, what string, fn func(*Build) error) (*Build, error) {
	b, err := s.db.update(ctx, id, fn)
	if err == nil || !store.DiskFull(err) {
		return b, err
	}
	s.disk.noteFull(what, err)
	if s.disk.release() {
		if b, err = s.db.update(ctx, id, fn); err == nil || !store.DiskFull(err) {
			return b, err
		}
	}
	b, err = s.db.keep(ctx, id, fn)
	if err != nil {
		return nil, err
	}
	s.log.WithFields(logrus.Fields{"build": id, "state": b.State}).Error("the state directory's disk is full: " + what + " is kept in memory and written once there is room (a restart before then loses it)")
	return b, nil
}

// watchDisk looks at a full disk every few seconds: once there is room,
// it writes the records kept in memory and wakes the queue.
func (s *Service) watchDisk() {
	defer s.workers.Done()
	ticker := time.NewTicker(diskCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.closing:
			s.flushRecords()
			return
		case <-ticker.C:
		}
		wasFull := s.disk.isFull()
		if s.disk.recover() {
			s.flushRecords()
			if wasFull {
				s.kick()
			}
		}
	}
}

// flushRecords writes the records kept in memory.
func (s *Service) flushRecords() {
	for _, id := range s.db.kept() {
		if err := s.db.flush(context.Background(), id); err != nil {
			if !store.DiskFull(err) {
				s.log.WithError(err).WithField("build", id).Error("writing a build's record kept in memory")
			}
			continue
		}
		s.log.WithField("build", id).Info("wrote the build's record kept in memory while the disk was full")
	}
}
