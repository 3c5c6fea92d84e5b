package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// sandbox is the benchmark's own registry and state directory, so that a
// run leaves the user's registry and ledger as it found them: the embedded
// registry in a temporary folder, holding copies (by digest, under the same
// repository and tag) of the builder and base images the recipe names, and
// a state directory whose input cache is the user's (a symbolic link: the
// source mirrors, module caches and Envoy are fetched once and kept), but
// whose ledger, work folders and configuration are its own. close removes
// all of it; the user's input cache stays.
type sandbox struct {
	dir string
	srv *registry.Server
	// cfg is the user's configuration with the sandbox's registry and
	// state directory; configFile holds it for sailmaker processes.
	cfg        *config.Config
	configFile string
	// user is the user's registry address, the one recipes were expanded
	// for.
	user string
}

// newSandbox starts the sandbox and copies images (references on the
// user's registry, by tag or digest) into it.
func newSandbox(ctx context.Context, user *config.Config, images []string, progress io.Writer) (sb *sandbox, err error) {
	dir, err := os.MkdirTemp("", "sailmaker-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating the benchmark's sandbox: %w", err)
	}
	sb = &sandbox{dir: dir, user: user.Registry.Address}
	defer func() {
		if err != nil {
			sb.close()
			sb = nil
		}
	}()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(user.CacheDir(), 0o755); err != nil {
		return nil, fmt.Errorf("the input cache: %w", err)
	}
	cache, err := filepath.Abs(user.CacheDir())
	if err != nil {
		return nil, err
	}
	if err := os.Symlink(cache, filepath.Join(state, "cache")); err != nil {
		return nil, fmt.Errorf("sharing the input cache with the sandbox: %w", err)
	}
	root := filepath.Join(dir, "registry")
	if sb.srv, err = registry.NewServer(ctx, root); err != nil {
		return nil, err
	}
	if err := sb.srv.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	cfg := *user
	cfg.StateDir = state
	cfg.Registry.Address = sb.srv.Addr()
	cfg.Registry.Root = root
	sb.cfg = &cfg
	data, err := yaml.Marshal(sb.cfg)
	if err != nil {
		return nil, fmt.Errorf("writing the sandbox's configuration: %w", err)
	}
	sb.configFile = filepath.Join(state, "config.yaml")
	if err := os.WriteFile(sb.configFile, data, 0o600); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "bench: a registry of its own on %s (state in %s, removed at the end; the input cache is %s)\n", sb.cfg.Registry.Address, dir, cache)
	if err := sb.copyImages(ctx, user, images, progress); err != nil {
		return nil, err
	}
	return sb, nil
}

// copyImages copies each image (an index with all its images, or one
// image) from the user's registry into the sandbox's, by digest, and tags
// it there as it is tagged at the user's.
func (sb *sandbox) copyImages(ctx context.Context, user *config.Config, images []string, progress io.Writer) error {
	from, err := registry.NewClient(user, registry.WithLogger(quietLogger()))
	if err != nil {
		return err
	}
	to, err := registry.NewClient(sb.cfg, registry.WithLogger(quietLogger()))
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range images {
		if seen[s] {
			continue
		}
		seen[s] = true
		t := time.Now()
		ref, err := from.ParseRef(s)
		if err != nil {
			return err
		}
		d, ok, err := from.Resolve(ctx, ref)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is not in the registry: run `sailmaker base build` (make demo does)", s)
		}
		desc, err := remote.Get(ref.Context().Digest(d.String()), from.Remote(ctx)...)
		if err != nil {
			return fmt.Errorf("reading %s: %w", s, err)
		}
		dst, err := to.ParseRef(sb.cfg.Registry.Address + "/" + ref.Context().RepositoryStr() + refSuffix(ref, d.String()))
		if err != nil {
			return err
		}
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				return err
			}
			err = remote.WriteIndex(dst, idx, to.Remote(ctx)...)
			if err != nil {
				return fmt.Errorf("copying %s into the benchmark's registry: %w", s, err)
			}
		} else {
			img, err := desc.Image()
			if err != nil {
				return err
			}
			if err := remote.Write(dst, img, to.Remote(ctx)...); err != nil {
				return fmt.Errorf("copying %s into the benchmark's registry: %w", s, err)
			}
		}
		got, ok, err := to.Resolve(ctx, dst)
		if err != nil || !ok || got != d {
			return fmt.Errorf("copying %s into the benchmark's registry: it holds %v there, want %s (%v)", s, got, d, err)
		}
		fmt.Fprintf(progress, "bench:   copied %s@%s (%s)\n", ref.Context().RepositoryStr(), d, fmtDuration(time.Since(t)))
	}
	return nil
}

// refSuffix is ":tag" for a tag, "@digest" otherwise.
func refSuffix(ref name.Reference, digest string) string {
	if t, ok := ref.(name.Tag); ok {
		return ":" + t.TagStr()
	}
	return "@" + digest
}

// args are the global flags that make a sailmaker process use the
// sandbox.
func (sb *sandbox) args() []string {
	return []string{"--config", sb.configFile, "--state-dir", sb.cfg.StateDir}
}

// close stops the registry and removes the sandbox, but not the user's
// input cache it links to.
func (sb *sandbox) close() {
	if sb == nil {
		return
	}
	if sb.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = sb.srv.Close(ctx)
		cancel()
	}
	// The link first, on its own: nothing below may reach the user's cache.
	link := filepath.Join(sb.dir, "state", "cache")
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		_ = os.Remove(link)
	}
	_ = os.RemoveAll(sb.dir)
}

// recipeImages are the builder and base images r names.
func recipeImages(r *recipes.Recipe) []string {
	out := []string{r.Spec.Toolchain.Builder}
	for _, im := range r.Spec.Images {
		out = append(out, im.Base)
	}
	return out
}

// unregistry writes references on registry addr as ${REGISTRY}/..., so that
// they expand to whichever registry the benchmark builds against.
func unregistry(ref, addr string) string {
	if rest, ok := strings.CutPrefix(ref, addr+"/"); ok {
		return "${REGISTRY}/" + rest
	}
	return ref
}

// rehome turns r's builder and base references on registry addr into
// ${REGISTRY} ones (r is a copy read back from recipes.Marshal).
func rehome(r *recipes.Recipe, addr string) {
	r.Spec.Toolchain.Builder = unregistry(r.Spec.Toolchain.Builder, addr)
	for i := range r.Spec.Images {
		r.Spec.Images[i].Base = unregistry(r.Spec.Images[i].Base, addr)
	}
}

func quietLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
