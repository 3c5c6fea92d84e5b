package publish

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// Settings say where a build's images go and how.
type Settings struct {
	// Outputs are the destinations (default: the registry).
	Outputs []Output
	// Registry is the client for the internal registry (required with a
	// registry output).
	Registry *registry.Client
	// Ledger records the registry's tag changes (optional).
	Ledger Ledger
	// Force moves tags that name another digest, and builds even when the
	// registry has the images.
	Force bool
	// Key signs images and attestations (optional).
	Key *attest.Key
	Log logrus.FieldLogger
	// OnConfirmed is told the ledger intents a publish confirms for
	// earlier builds (see WithOnConfirmed).
	OnConfirmed func(context.Context, []store.Entry)
}

// New makes the publisher for s, and the cache a builder should use: the
// registry, when it is an output and the build is not forced.
func New(s Settings) (Publisher, builder.Cache, error) {
	if len(s.Outputs) == 0 {
		s.Outputs = []Output{{Kind: OutputRegistry}}
	}
	var ps []Publisher
	var cache builder.Cache
	for _, o := range s.Outputs {
		switch o.Kind {
		case OutputRegistry:
			if s.Registry == nil {
				return nil, nil, errors.New("publish: a registry output needs a registry client")
			}
			opts := []RegistryOption{WithForce(s.Force), RequireSigned(s.Key != nil)}
			if s.Ledger != nil {
				opts = append(opts, WithLedger(s.Ledger))
			}
			if s.Log != nil {
				opts = append(opts, WithLog(s.Log))
			}
			if s.OnConfirmed != nil {
				opts = append(opts, WithOnConfirmed(s.OnConfirmed))
			}
			reg, err := NewRegistry(s.Registry, opts...)
			if err != nil {
				return nil, nil, err
			}
			if !s.Force {
				cache = reg
			}
			ps = append(ps, reg)
		case OutputOCILayout:
			ps = append(ps, Layout(o.Path))
		case OutputTar:
			ps = append(ps, Tarball(o.Path))
		default:
			return nil, nil, errors.New("publish: unknown output " + o.String())
		}
	}
	var p Publisher = Multi(ps...)
	if len(ps) == 1 {
		p = ps[0]
	}
	if s.Key != nil {
		p = Signed(p, s.Key)
	}
	return p, cache, nil
}

// Outcome is a build and what publishing it did.
type Outcome struct {
	*builder.Result
	// Published are the published images, one per image and output.
	Published []api.Image
}

// BuildAndPublish builds r with b, then publishes the result with p: the
// one loop the CLI and the service both run. Timings.Push and Total cover
// publishing. On a publish error the outcome still lists what was
// published. The result's files are removed once published.
func BuildAndPublish(ctx context.Context, b *builder.Builder, r *recipes.Recipe, req builder.Request, p Publisher) (*Outcome, error) {
	start := time.Now()
	res, err := b.Build(ctx, r, req)
	if err != nil {
		if res != nil {
			return &Outcome{Result: res}, err
		}
		return nil, err
	}
	defer res.Close()
	if req.OnPhase != nil {
		req.OnPhase(api.PhasePushing)
	}
	t := time.Now()
	imgs, err := p.Publish(ctx, res)
	res.Timings.Push = time.Since(t)
	res.Timings.Total = time.Since(start)
	return &Outcome{Result: res, Published: imgs}, err
}

// API is the outcome as the CLI prints it and the service records it.
func (o *Outcome) API() api.Result {
	t := o.Timings
	return api.Result{
		Recipe: o.RecipeID, RecipeDigest: o.RecipeDigest, Commit: o.Commit, InputsKey: o.InputsKey,
		Trigger: o.Trigger, UpToDate: o.UpToDate, Reproducible: o.Reproducible, Images: o.Published, Timings: &t,
	}
}
