package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// A build's work folder (the make results read out of BuildKit, the
// layers, the packages) is one of the state's reused work folders,
// tmp/work-<n>, each held by one build at a time (tmp/work-<n>.lock), its
// files left for the next build to write over. Writing a file again over
// the pages the page cache already holds for it is several times cheaper
// than writing a new one where fresh memory must be found for every page:
// on this project's machines (virtual machines that hand the memory freed
// back to their host) writing 108 MiB took 0.28 s as a new file and
// 0.03 s over an existing one, and an Istio build's part after make went
// from 1.36 s to 1.13 s (median of four).
type workDir struct {
	dir  string
	lock *os.File
}

// acquireWork takes the first work folder under stateDir no other build
// holds, making one if every one is held.
func acquireWork(stateDir string) (*workDir, error) {
	root := filepath.Join(stateDir, "tmp")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		name := filepath.Join(root, fmt.Sprintf("work-%d", i))
		f, err := os.OpenFile(name+".lock", os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("taking a work folder: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			return nil, fmt.Errorf("taking a work folder: %w", err)
		}
		// A folder must be a folder of ours, not a link to elsewhere.
		if fi, err := os.Lstat(name); err == nil && !fi.IsDir() {
			if err := os.Remove(name); err != nil {
				f.Close()
				return nil, err
			}
		}
		if err := os.MkdirAll(name, 0o700); err != nil {
			f.Close()
			return nil, err
		}
		return &workDir{dir: name, lock: f}, nil
	}
}

// release lets another build take the folder; its files stay.
func (w *workDir) release() {
	if w != nil && w.lock != nil {
		_ = syscall.Flock(int(w.lock.Fd()), syscall.LOCK_UN)
		w.lock.Close()
		w.lock = nil
	}
}
