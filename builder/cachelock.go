package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// lockInputCache takes the input cache for one build's fetch: builds that
// run at once (the service's pool) share its git mirrors, checkouts and
// module caches, which git and `go mod download` must not write from two
// processes at a time. Another build's fetch is waited for, until ctx is
// done.
func lockInputCache(ctx context.Context, dir string, log logrus.FieldLogger) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "fetch.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the input cache: %w", err)
	}
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("locking the input cache: %w", err)
		}
		if !waited {
			waited = true
			log.Info("waiting for another build's fetch to finish (the input cache is shared)")
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
