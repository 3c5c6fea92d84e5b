// Package builder turns a recipe into images: it fetches and verifies every
// input outside the build, runs upstream's make targets in BuildKit with no
// network, and assembles the images the way upstream's Dockerfiles do.
package builder

import (
	"context"
	"fmt"
	"io"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/registry"
)

// Connect opens a client to the configured buildkitd and checks that it
// answers, saying what to do when it does not.
func Connect(ctx context.Context, cfg *config.Config) (*client.Client, error) {
	var opts []client.ClientOpt
	if strings.HasPrefix(cfg.BuildKit.Address, "tcp://") && cfg.BuildKit.CACert != "" {
		opts = append(opts, client.WithServerConfig(cfg.BuildKit.ServerName, cfg.BuildKit.CACert))
		if cfg.BuildKit.Cert != "" {
			opts = append(opts, client.WithCredentials(cfg.BuildKit.Cert, cfg.BuildKit.Key))
		}
	}
	c, err := client.New(ctx, cfg.BuildKit.Address, opts...)
	if err == nil {
		if err = buildkitd.CheckWorkers(ctx, c); err == nil {
			return c, nil
		}
		c.Close()
	}
	return nil, fmt.Errorf("buildkitd at %s is not answering (%s): %w", cfg.BuildKit.Address, buildKitHint(cfg), err)
}

// buildKitHint says where the address came from and what to do, naming
// the setting the user actually used.
func buildKitHint(cfg *config.Config) string {
	origin := cfg.Origin("buildkit.address")
	if origin == config.DefaultOrigin {
		return "the default address: start it with `sailmaker dev up` or `make demo`, or point buildkit.address in the config or $BUILDKIT_HOST at a running buildkitd"
	}
	return "the address is from " + origin + ": start buildkitd there, or change " + origin
}

// Progress says how solve progress is shown.
type Progress struct {
	Out  io.Writer
	Mode progressui.DisplayMode // auto (a terminal display on a terminal), plain, quiet
	// Log, if set, also receives the output of every build step.
	Log io.Writer
}

// Solve marshals st and solves it (the result exported as opt says),
// draining progress into the display, all under one errgroup so that
// cancelling ctx reaches BuildKit.
func Solve(ctx context.Context, c *client.Client, st llb.State, opt client.SolveOpt, p Progress) error {
	def, err := st.Marshal(ctx, llb.LinuxAmd64)
	if err != nil {
		return fmt.Errorf("marshalling build definition: %w", err)
	}
	return buildWithStatus(ctx, c, opt, func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		return gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
	}, p, nil)
}

// buildWithStatus runs a gateway build, drains its status into the
// progress display and hands every status to collect (when not nil).
func buildWithStatus(ctx context.Context, c *client.Client, opt client.SolveOpt, fn gateway.BuildFunc, p Progress, collect func(*client.SolveStatus)) error {
	opt, err := withRegistryAuth(opt)
	if err != nil {
		return err
	}
	if opt.FrontendAttrs == nil {
		// The client copies the cache imports into a clone of these
		// attributes, and a clone of nil is nil: with a registry cache
		// it panics without them.
		opt.FrontendAttrs = map[string]string{}
	}
	p = p.withDefaults()
	ch := make(chan *client.SolveStatus)
	display := make(chan *client.SolveStatus)
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		defer close(display)
		for s := range ch {
			if collect != nil {
				collect(s)
			}
			if p.Log != nil {
				for _, l := range s.Logs {
					_, _ = p.Log.Write(l.Data)
				}
			}
			display <- s
		}
		return nil
	})
	eg.Go(func() error {
		_, err := c.Build(ctx, opt, "", fn, ch)
		return registry.ExplainBuildKitAuth(err)
	})
	eg.Go(func() error { return showProgress(ctx, p, display) })
	return eg.Wait()
}

// withRegistryAuth adds BuildKit's docker auth provider to opt's session:
// buildkitd asks it, through the session, for the credentials of every
// registry it pulls from or pushes to (the builder image, the registry
// cache), and it answers from the docker config of the user running
// sailmaker ($DOCKER_CONFIG, else ~/.docker; credential helpers included),
// the config sailmaker's own registry client reads. The credentials go to
// buildkitd only over the session, never into the definition, logs or
// provenance.
func withRegistryAuth(opt client.SolveOpt) (client.SolveOpt, error) {
	dir, origin := registry.DockerConfigDir()
	cf, err := dockerconfig.Load(dir)
	if err != nil {
		return opt, fmt.Errorf("reading the docker config in %s (%s) for registry credentials: %w", dir, origin, err)
	}
	opt.Session = append(append([]session.Attachable(nil), opt.Session...),
		authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{AuthConfigProvider: authprovider.LoadAuthConfig(cf)}))
	return opt, nil
}

// showProgress shows a solve's progress on p.Out (in p.Mode, or plain when
// that mode cannot be shown there) until ch is closed.
func showProgress(ctx context.Context, p Progress, ch chan *client.SolveStatus) error {
	d, err := progressui.NewDisplay(p.Out, p.Mode)
	if err != nil {
		d, _ = progressui.NewDisplay(p.Out, progressui.PlainMode)
	}
	_, err = d.UpdateFrom(context.WithoutCancel(ctx), ch)
	return err
}

// withDefaults is p with nothing shown when it has no writer, and
// BuildKit's auto mode when it names none.
func (p Progress) withDefaults() Progress {
	if p.Out == nil {
		p.Out = io.Discard
		p.Mode = progressui.QuietMode
	}
	if p.Mode == "" {
		p.Mode = progressui.AutoMode
	}
	return p
}
