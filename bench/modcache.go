package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tonistiigi/fsutil"
	"github.com/tonistiigi/fsutil/types"

	"github.com/sailmaker/sailmaker/config"
)

// ModuleCache describes the Go module cache the paths build with.
type ModuleCache struct {
	Files int   `json:"files"`
	Size  int64 `json:"size"`
	// Metadata is what BuildKit receives for the module cache when its
	// snapshot already holds every file: one stat packet per file and
	// directory (fsutil's diffcopy, as sailmaker sends the cache), and
	// the end of the stream. Whatever BuildKit receives beyond it is file
	// content.
	Metadata int64 `json:"metadata"`
}

// finPacket is the size of the packet that ends a diffcopy transfer,
// counted by the receiver like the others.
var finPacket = int64((&types.Packet{Type: types.PACKET_FIN}).SizeVT())

// describeModuleCache walks dir as fsutil's sender does and adds up the
// stat packets it would send.
func describeModuleCache(ctx context.Context, dir string) (ModuleCache, error) {
	var mc ModuleCache
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		return mc, fmt.Errorf("reading the module cache %s: %w", dir, err)
	}
	err = fs.Walk(ctx, string(filepath.Separator), func(p string, entry os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := entry.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*types.Stat)
		if !ok {
			return fmt.Errorf("%s: no stat from fsutil", p)
		}
		st.Path = filepath.ToSlash(st.Path)
		st.Linkname = filepath.ToSlash(st.Linkname)
		mc.Metadata += int64((&types.Packet{Type: types.PACKET_STAT, Stat: st}).SizeVT())
		if fi.Mode().IsRegular() {
			mc.Files++
			mc.Size += fi.Size()
		}
		return nil
	})
	if err != nil {
		return mc, fmt.Errorf("reading the module cache %s: %w", dir, err)
	}
	// The last, empty stat packet counts 0 bytes; the end of the stream
	// counts its own.
	mc.Metadata += finPacket
	return mc, nil
}

// contentOf is the part of a module cache transfer of n bytes that was file
// content.
func (mc ModuleCache) contentOf(n int64) int64 {
	if n == 0 {
		return 0
	}
	return max(0, n-mc.Metadata)
}

// timeModuleDownload downloads every module srcDir's go.sum names into an
// empty module cache, as sailmaker's fetch does (the same `go mod
// download`, GOPROXY and GOSUMDB), and removes it again: the first-time
// cost of a go.sum, which sailmaker pays once and then keeps in its input
// cache.
func timeModuleDownload(ctx context.Context, srcDir, tmp string, goCfg config.GoConfig) (time.Duration, error) {
	dir, err := os.MkdirTemp(tmp, "gomod-")
	if err != nil {
		return 0, err
	}
	env := append(os.Environ(), "GOMODCACHE="+dir, "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GONOSUMDB=", "GONOSUMCHECK=", "GOPRIVATE=", "GOINSECURE=", "GOWORK=off")
	if goCfg.Proxy != "" {
		env = append(env, "GOPROXY="+goCfg.Proxy)
	}
	if goCfg.SumDB != "" {
		env = append(env, "GOSUMDB="+goCfg.SumDB)
	}
	defer func() {
		// Module caches are read-only; go clean knows how to remove them.
		clean := exec.Command("go", "clean", "-modcache")
		clean.Env = env
		_ = clean.Run()
		_ = os.RemoveAll(dir)
	}()
	sum, _ := os.ReadFile(filepath.Join(srcDir, "go.sum"))
	cmd := exec.CommandContext(ctx, "go", "mod", "download")
	cmd.Dir, cmd.Env = srcDir, env
	t := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t)
	if err != nil {
		return d, fmt.Errorf("go mod download (the first-time module download): %w: %s", err, tailString(string(out), 1500))
	}
	if after, _ := os.ReadFile(filepath.Join(srcDir, "go.sum")); string(after) != string(sum) {
		return d, fmt.Errorf("go mod download changed %s/go.sum", srcDir)
	}
	return d, nil
}
