// Package publish puts what the builder made somewhere: the internal
// registry (content by digest, attachments, signatures, then tags, with
// the ledger), an OCI image layout directory, or a docker-archive tarball.
//
// A Publisher takes a builder.Result and returns what became of each image
// there. Behaviour that cuts across destinations is a wrapper with the same
// interface, as in ko: Signed signs images and attestations before the
// inner publisher writes them, Multi tees to several destinations.
package publish

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder"
)

// Publisher puts a build's images somewhere.
type Publisher interface {
	// Publish writes res and says, per image, what happened. On an error
	// it still returns what it finished (a tag written before a later
	// failure is reported), with the error.
	Publish(ctx context.Context, res *builder.Result) ([]api.Image, error)
}

// Output kinds, as --output names them.
const (
	OutputRegistry  = "registry"
	OutputOCILayout = "oci-layout"
	OutputTar       = "tar"
)

// Output is one destination a build's images go to.
type Output struct {
	Kind string
	// Path is the directory (oci-layout) or file (tar).
	Path string
}

func (o Output) String() string {
	if o.Path == "" {
		return o.Kind
	}
	return o.Kind + ":" + o.Path
}

// ParseOutput reads one --output value: registry, oci-layout=DIR,
// tar=FILE or apt=DIR.
func ParseOutput(s string) (Output, error) {
	kind, path, hasPath := strings.Cut(s, "=")
	switch kind {
	case OutputRegistry:
		if hasPath {
			return Output{}, fmt.Errorf("--output %q: registry takes no path (the registry is registry.address in the config)", s)
		}
		return Output{Kind: kind}, nil
	case OutputOCILayout, OutputTar, OutputApt:
		if !hasPath || path == "" {
			what := "DIR"
			if kind == OutputTar {
				what = "FILE"
			}
			return Output{}, fmt.Errorf("--output %q: %s needs a path: %s=%s", s, kind, kind, what)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return Output{}, fmt.Errorf("--output %q: %w", s, err)
		}
		return Output{Kind: kind, Path: abs}, nil
	default:
		return Output{}, fmt.Errorf("--output %q: unknown output; use registry, oci-layout=DIR, tar=FILE or apt=DIR", s)
	}
}

// ParseOutputs reads every --output value, refusing a destination named
// twice.
func ParseOutputs(values []string) ([]Output, error) {
	var out []Output
	seen := map[string]bool{}
	for _, v := range values {
		o, err := ParseOutput(v)
		if err != nil {
			return nil, err
		}
		if seen[o.String()] {
			return nil, fmt.Errorf("--output %q is given twice", v)
		}
		seen[o.String()] = true
		out = append(out, o)
	}
	if len(out) == 0 {
		return nil, errors.New("no --output: name at least one of registry, oci-layout=DIR, tar=FILE, apt=DIR")
	}
	return out, nil
}

// Multi publishes to each publisher in turn and returns every result. It
// stops at the first error.
func Multi(ps ...Publisher) Publisher { return multi(ps) }

type multi []Publisher

func (m multi) Publish(ctx context.Context, res *builder.Result) ([]api.Image, error) {
	var all []api.Image
	for _, p := range m {
		out, err := p.Publish(ctx, res)
		all = append(all, out...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}
