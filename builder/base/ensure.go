package base

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// FromRecipe turns a BaseImage recipe into a Spec.
func FromRecipe(b *recipes.BaseImage) Spec {
	s := Spec{
		Name:            b.Metadata.Name,
		Version:         b.Metadata.Version,
		Suite:           b.Spec.Suite,
		Variant:         b.Spec.Variant,
		Packages:        b.Spec.Packages,
		SourceDateEpoch: b.Spec.SourceDateEpoch,
		Platforms:       b.Spec.Platforms,
		Sudoers:         b.Spec.Sudoers,
		Env:             b.Spec.Env,
		Labels:          b.Spec.Labels,
		User:            b.Spec.User,
		Workdir:         b.Spec.Workdir,
	}
	for _, u := range b.Spec.Users {
		s.Users = append(s.Users, User{Name: u.Name, UID: u.UID, Home: u.Home})
	}
	for _, a := range b.Spec.Alternatives {
		s.Alternatives = append(s.Alternatives, Alternative{Name: a.Name, Path: a.Path})
	}
	if d := b.Spec.Distroless; d != nil {
		s.Variant = "extract"
		s.Distroless = &Distroless{Files: d.Files, Links: d.Links, CACertificates: d.CACertificates, Dirs: map[string]uint32{}}
		for p, m := range d.Dirs {
			mode, _ := strconv.ParseUint(m, 8, 32) // validated by recipes
			s.Distroless.Dirs[p] = uint32(mode)
		}
	}
	if b.Spec.Go != nil {
		s.GoVersion = b.Spec.Go.Version
	}
	raw, _ := json.Marshal(b)
	sum := sha256.Sum256(raw)
	s.RecipeDigest = "sha256:" + hex.EncodeToString(sum[:])
	return s
}

// EnsureOptions say what Ensure may do.
type EnsureOptions struct {
	Options
	// Rebuild builds even when the tag exists; the result must then be the
	// same digest (reproducible) unless Force.
	Rebuild bool
	Force   bool
}

// Ensure makes sure the base image s is in the registry under its tag:
// when the tag exists it is reused (unless Rebuild); otherwise it is built
// and pushed.
func Ensure(ctx context.Context, rc *registry.Client, s Spec, o EnsureOptions) (*registry.Pushed, error) {
	tag, err := rc.Tag(s.Name, s.Version)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	if !o.Rebuild {
		d, ok, err := rc.Resolve(ctx, tag)
		if err != nil {
			return nil, err
		}
		if ok {
			log.WithFields(logrus.Fields{"image": tag.String(), "digest": d.String()}).Info("base image already in the registry; pass --rebuild to build it again")
			return &registry.Pushed{Tag: tag, Digest: d, Unchanged: true}, nil
		}
	}
	res, err := Build(ctx, s, o.Options)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", tag, err)
	}
	defer res.Close()
	return Push(ctx, rc, tag, res.Artifact, o.Force)
}
