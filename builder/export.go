package builder

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	gateway "github.com/moby/buildkit/frontend/gateway/client"
	fstypes "github.com/tonistiigi/fsutil/types"
	"golang.org/x/sync/errgroup"
)

// Reading the make results out of BuildKit: readTree copies a solved
// reference's tree into a local folder through the gateway, a few ranges
// at a time, several in flight. On this project's 2-core machine it read
// 113 MiB of Istio binaries in 0.30 s where BuildKit's local exporter
// (one file stream over the session) took 0.68 s.
const (
	// readChunk is the size of one range read: 1 MiB ranges, 4 at once,
	// were as fast as 8 MiB ones, 2 at once (and 4 MiB), and keep
	// sailmaker's memory flat: with 8 MiB ranges its peak during an Istio
	// build went from 77 MiB to 162 MiB.
	readChunk = 1 << 20
	// readsInFlight is how many ranges are read at once: one at a time
	// was half as fast.
	readsInFlight = 4
)

// treeStats is what readTree copied.
type treeStats struct {
	Files int
	Bytes int64
	Took  time.Duration
}

// readTree copies the tree of ref into dir (which must exist): folders,
// regular files with their permission bits and modification times, and
// symbolic links. A name that would leave dir, or a file of another kind
// (a device, a socket), is an error naming it.
func readTree(ctx context.Context, ref gateway.Reference, dir string) (treeStats, error) {
	start := time.Now()
	var st treeStats
	var files []*fstypes.Stat
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := ref.ReadDir(ctx, gateway.ReadDirRequest{Path: "/" + rel})
		if err != nil {
			return fmt.Errorf("listing /%s of the make results: %w", rel, err)
		}
		for _, e := range entries {
			// One name, one level down: BuildKit lists a folder's own
			// entries.
			if e.Path == "" || e.Path == "." || e.Path == ".." || strings.ContainsAny(e.Path, "/\x00") {
				return fmt.Errorf("the make results name %q, which is not a file name under their folder", e.Path)
			}
			name := path.Join(rel, e.Path)
			local := filepath.Join(dir, filepath.FromSlash(name))
			mode := os.FileMode(e.Mode)
			switch {
			case mode.IsDir():
				if err := os.Mkdir(local, mode.Perm()|0o700); err != nil && !os.IsExist(err) {
					return err
				}
				if err := walk(name); err != nil {
					return err
				}
			case mode&os.ModeSymlink != 0:
				if err := os.Symlink(e.Linkname, local); err != nil {
					return err
				}
			case mode.IsRegular():
				f := &fstypes.Stat{Path: name, Mode: e.Mode, Size: e.Size, ModTime: e.ModTime}
				files = append(files, f)
			default:
				return fmt.Errorf("the make results hold /%s, which is neither a file, a folder nor a symbolic link (mode %s)", name, mode)
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return st, err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readsInFlight)
	var read atomic.Int64
	opened := make([]*os.File, len(files))
	defer func() {
		for _, f := range opened {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, f := range files {
		out, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(f.Path)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(f.Mode).Perm()|0o600)
		if err != nil {
			g.Wait()
			return st, err
		}
		opened[i] = out
		for off := int64(0); off < f.Size; off += readChunk {
			n := min(int64(readChunk), f.Size-off)
			g.Go(func() error {
				b, err := ref.ReadFile(gctx, gateway.ReadRequest{Filename: "/" + f.Path, Range: &gateway.FileRange{Offset: int(off), Length: int(n)}})
				if err != nil {
					return fmt.Errorf("reading /%s of the make results: %w", f.Path, err)
				}
				if int64(len(b)) != n {
					return fmt.Errorf("reading /%s of the make results: %d bytes at %d, expected %d (did it change while being read?)", f.Path, len(b), off, n)
				}
				if _, err := out.WriteAt(b, off); err != nil {
					return err
				}
				read.Add(n)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	for i, f := range files {
		if err := opened[i].Close(); err != nil {
			return st, err
		}
		opened[i] = nil
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.Chmod(p, os.FileMode(f.Mode).Perm()); err != nil {
			return st, err
		}
		mt := time.Unix(0, f.ModTime)
		if err := os.Chtimes(p, mt, mt); err != nil {
			return st, err
		}
	}
	st.Files, st.Bytes, st.Took = len(files), read.Load(), time.Since(start)
	return st, nil
}
