package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/atomicfile"
	"github.com/sailmaker/sailmaker/recipes"
)

// recipeIDRE is what a recipe id given by name may look like; it keeps ids
// from naming paths outside the recipe directory.
var recipeIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// errUnknownRecipe is wrapped when no recipe has the id asked for.
var errUnknownRecipe = errors.New("unknown recipe")

func (s *Service) recipeOptions() []recipes.Option {
	return []recipes.Option{recipes.WithRegistry(s.cfg.Registry.Address), recipes.WithAllowedRegistries(s.cfg.AllowedRegistries())}
}

// storedRecipePath is where a recipe the webhook made (or an operator put)
// is kept: <state>/recipes/<name>@<version>.yaml.
func (s *Service) storedRecipePath(id string) string {
	return filepath.Join(s.recipeDir(), id+".yaml")
}

// recipeByID finds a recipe by id: an embedded one, else one stored in the
// state directory. It returns the recipe, its source and the document to
// keep with the build.
func (s *Service) recipeByID(id string) (*recipes.Recipe, string, []byte, error) {
	if !recipeIDRE.MatchString(id) {
		return nil, "", nil, fmt.Errorf("%w %q: a recipe id is name@version, like istio@1.24.2", errUnknownRecipe, id)
	}
	r, err := recipes.Get(id, s.recipeOptions()...)
	if err == nil {
		return r, SourceEmbedded, []byte(id), nil
	}
	if !errors.Is(err, recipes.ErrNotFound) {
		return nil, "", nil, err
	}
	p := s.storedRecipePath(id)
	data, rerr := os.ReadFile(p)
	if errors.Is(rerr, fs.ErrNotExist) {
		return nil, "", nil, fmt.Errorf("%w %q: neither embedded (see `sailmaker recipes list`) nor stored in %s", errUnknownRecipe, id, s.recipeDir())
	}
	if rerr != nil {
		return nil, "", nil, fmt.Errorf("reading recipe %s: %w", id, rerr)
	}
	r, err = recipes.Load(p, s.recipeOptions()...)
	if err != nil {
		return nil, "", nil, err
	}
	if r.ID() != id {
		return nil, "", nil, fmt.Errorf("the stored recipe %s is %s, not %s", p, r.ID(), id)
	}
	return r, SourceStored, data, nil
}

// parseInline parses a recipe document sent with a request. It cannot name
// patches: there is no directory for them.
func (s *Service) parseInline(data []byte) (*recipes.Recipe, error) {
	return recipes.Parse("inline recipe", data, s.recipeOptions()...)
}

// loadBuildRecipe reads the recipe a build was queued with, and checks that
// it is still the same recipe (digest).
func (s *Service) loadBuildRecipe(ctx context.Context, b *Build) (*recipes.Recipe, error) {
	doc, err := s.db.recipeDoc(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	var r *recipes.Recipe
	switch b.Source {
	case SourceEmbedded:
		r, err = recipes.Get(string(doc), s.recipeOptions()...)
	case SourceStored:
		// Parse the document kept with the build: the file may have changed.
		var root *os.Root
		if root, err = os.OpenRoot(s.recipeDir()); err == nil {
			defer root.Close()
			r, err = recipes.Parse(s.storedRecipePath(b.Recipe), doc, append(s.recipeOptions(), recipes.WithDir(root.FS()))...)
		}
	default:
		r, err = s.parseInline(doc)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the recipe of the build: %w", err)
	}
	if d := r.Digest(); d != b.RecipeDigest {
		return nil, fmt.Errorf("the recipe %s now has digest %s, not %s as when the build was queued (a different sailmaker or registry setting?); queue it again", b.Recipe, d, b.RecipeDigest)
	}
	return r, nil
}

// dedupKey is what makes two requests the same build: the recipe and the
// options that change what is built or pushed.
func dedupKey(recipeDigest string, force bool, envoySHA256 string) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\nforce %t\nenvoy %s\n", recipeDigest, force, envoySHA256)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// platformsKey adds a build's platforms and per-architecture Envoy
// overrides to its dedup key; nothing when it has neither, so that keys of
// builds queued before they existed stay as they were.
func platformsKey(envoyByArch map[string]string, platforms []string) string {
	if len(envoyByArch) == 0 && len(platforms) == 0 {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "platforms %s\n", strings.Join(platforms, ","))
	arches := make([]string, 0, len(envoyByArch))
	for a := range envoyByArch {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	for _, a := range arches {
		fmt.Fprintf(h, "envoy %s %s\n", a, envoyByArch[a])
	}
	return "+" + hex.EncodeToString(h.Sum(nil))[:16]
}

// BuildRequest is the builder's request for a build's Envoy overrides and
// platforms.
func BuildRequest(envoySHA256 string, byArch map[string]string, platforms []string) builder.Request {
	req := builder.Request{EnvoySHA256: envoySHA256, Platforms: platforms}
	for a, sum := range byArch {
		if req.EnvoyByArch == nil {
			req.EnvoyByArch = map[string]builder.EnvoyOverride{}
		}
		req.EnvoyByArch[a] = builder.EnvoyOverride{SHA256: sum}
	}
	return req
}

// recipeFromTag derives the recipe of an upstream tag for the webhook, with
// the configured Go toolchain and confirmed Envoy checksum, and stores it.
func (s *Service) recipeFromTag(ctx context.Context, repoURL, tag string) (*recipes.Recipe, []byte, error) {
	wh := s.srv.Webhook
	r, err := s.newRec(ctx, recipes.NewOptions{
		GitURL:   repoURL,
		FetchURL: s.cfg.RewriteGitURL(repoURL),
		Tag:      tag,
		Registry: s.cfg.Registry.Address,
		EnvoyURL: wh.EnvoyURL,
	})
	if err != nil {
		return nil, nil, err
	}
	if wh.Go != "" && r.Spec.Toolchain.Go != wh.Go {
		if r, err = s.withGo(r, wh.Go); err != nil {
			return nil, nil, err
		}
	}
	if e := r.Spec.Inputs.Envoy; e != nil && e.Unconfirmed {
		if sum := wh.EnvoySHA256[e.ProxySHA]; sum != "" {
			if err := r.ConfirmEnvoySHA256(strings.ToLower(sum)); err != nil {
				return nil, nil, fmt.Errorf("server.webhook.envoySHA256[%s]: %w", e.ProxySHA, err)
			}
		}
	}
	data, err := recipes.Marshal(r)
	if err != nil {
		return nil, nil, err
	}
	// What is stored is what builds: parse it back.
	stored, err := recipes.Parse(s.storedRecipePath(r.ID()), data, s.recipeOptions()...)
	if err != nil {
		return nil, nil, fmt.Errorf("the recipe made from %s at %s does not parse back: %w", repoURL, tag, err)
	}
	if err := atomicfile.Write(s.storedRecipePath(stored.ID()), data); err != nil {
		return nil, nil, fmt.Errorf("storing recipe %s: %w", stored.ID(), err)
	}
	return stored, data, nil
}

// withGo is r with its builder image and Go version set to the configured
// Go release (server.webhook.go).
func (s *Service) withGo(r *recipes.Recipe, goVersion string) (*recipes.Recipe, error) {
	data, err := recipes.Marshal(r)
	if err != nil {
		return nil, err
	}
	var doc recipes.Recipe
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("reading back the new recipe: %w", err)
	}
	doc.Spec.Toolchain = recipes.Toolchain{Builder: "${REGISTRY}/builder/go" + goVersion + ":1", Go: goVersion}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, err
	}
	nr, err := recipes.Parse("recipe "+r.ID(), out, s.recipeOptions()...)
	if err != nil {
		return nil, fmt.Errorf("server.webhook.go %q: %w", goVersion, err)
	}
	return nr, nil
}
