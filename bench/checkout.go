package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sailmaker/sailmaker/recipes"
)

// checkout is a work tree of the recipe's source, the one the plain and
// floor paths build in, as a maintainer's: cloned at the tag with .git
// (upstream's version stamping runs git), the recipe's patches applied. The
// benchmark's own patch is swapped in and out between builds.
type checkout struct {
	Dir  string
	file string // the file the benchmark patches, slash-separated
	// pristine is that file with the recipe's patches only.
	pristine []byte
	current  *Patch
}

func gitCmd(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// newCheckout clones url's tag into dir (which must not exist), checks it
// is commit, and applies patches.
func newCheckout(ctx context.Context, url, tag, commit, dir, file string, patches []recipes.Patch) (*checkout, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if _, err := gitCmd(ctx, "", "clone", "-q", "--depth=1", "--branch", tag, "-c", "advice.detachedHead=false", url, dir); err != nil {
		return nil, fmt.Errorf("cloning %s at %s: %w", url, tag, err)
	}
	head, err := gitCmd(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return nil, err
	}
	if head != commit {
		return nil, fmt.Errorf("tag %s of %s is %s, the recipe pins %s", tag, url, head, commit)
	}
	for i, p := range patches {
		pf := filepath.Join(dir, ".git", fmt.Sprintf("recipe-%d.patch", i))
		if err := os.WriteFile(pf, p.Data, 0o644); err != nil {
			return nil, err
		}
		if _, err := gitCmd(ctx, dir, "apply", "--whitespace=nowarn", pf); err != nil {
			return nil, fmt.Errorf("recipe patch %s: %w", p.Path, err)
		}
	}
	c := &checkout{Dir: dir, file: file}
	if c.pristine, err = os.ReadFile(c.path()); err != nil {
		return nil, fmt.Errorf("the benchmark patches %s: %w", file, err)
	}
	return c, nil
}

func (c *checkout) path() string { return filepath.Join(c.Dir, filepath.FromSlash(c.file)) }

// use leaves the tree with p applied (nil: none) on top of the recipe's
// patches, applying p with `git apply` as sailmaker does.
func (c *checkout) use(ctx context.Context, p *Patch) error {
	if c.current == p {
		return nil
	}
	if err := os.WriteFile(c.path(), c.pristine, 0o644); err != nil {
		return err
	}
	c.current = nil
	if p == nil {
		return nil
	}
	pf := filepath.Join(c.Dir, ".git", "bench.patch")
	if err := os.WriteFile(pf, p.Diff, 0o644); err != nil {
		return err
	}
	if _, err := gitCmd(ctx, c.Dir, "apply", pf); err != nil {
		return fmt.Errorf("the benchmark's patch of %s: %w", p.File, err)
	}
	c.current = p
	return os.Remove(pf)
}
