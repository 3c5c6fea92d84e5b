package publish

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/packaging/istio"
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
	// AptSigner signs the apt repositories (apt outputs); required with
	// one.
	AptSigner *aptrepo.Signer
	// IstioctlRetention says which releases the multi-version istioctl
	// package keeps (default: all). The package is made after the
	// registry push, so only with a registry output.
	IstioctlRetention istio.Retention
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
	var ps, pkgOutputs []Publisher
	var cache builder.Cache
	var reg *Registry
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
			var err error
			reg, err = NewRegistry(s.Registry, opts...)
			if err != nil {
				return nil, nil, err
			}
			if !s.Force {
				cache = reg
			}
			ps = append(ps, reg)
		case OutputOCILayout:
			ps = append(ps, Layout(o.Path))
			pkgOutputs = append(pkgOutputs, Layout(o.Path))
		case OutputApt:
			if s.AptSigner == nil {
				return nil, nil, fmt.Errorf("--output %s: the apt repository needs an OpenPGP key: signing.aptKey ($SAILMAKER_APT_KEY); `sailmaker signing keygen --openpgp` makes one", o)
			}
			apt := Apt(o.Path, aptrepo.Options{Signer: s.AptSigner}, s.Log)
			ps = append(ps, apt)
			pkgOutputs = append(pkgOutputs, apt)
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
	if reg != nil {
		// The multi-version istioctl package, from what the registry holds
		// once this build's istioctl is in.
		p = Multi(p, IstioctlVersions(reg, s.Key, s.IstioctlRetention, pkgOutputs...))
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
