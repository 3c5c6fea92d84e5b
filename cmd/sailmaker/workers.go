package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/builder/pool"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/service"
)

func init() { subcommands = append(subcommands, newWorkersCmd) }

type workersListOptions struct {
	server string
	output *outputFlag
}

type workersDrainOptions struct {
	server  string
	name    string
	timeout time.Duration
	noWait  bool
	undo    bool
}

func newWorkersCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "The BuildKit workers the build service runs builds on: list, drain",
		Long: `The build service runs builds on a pool of stock buildkitd workers
(buildkit.workers in the config; a single buildkit.address is a pool of one,
named default), reached over TCP with mutual TLS. Builds of one recipe line
(source repository and minor version) go to the same worker while it is up.`,
		Example: `  sailmaker workers list --server http://127.0.0.1:8080
  sailmaker workers list -o json
  sailmaker workers drain bk-1`,
	}
	lo := &workersListOptions{}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the workers: state, BuildKit version, platforms, slots, builds, last error",
		Long: `With a service (--server, SAILMAKER_SERVER or server.url), list its workers
as it sees them (GET /v1/workers). Without one, probe the workers of this
config directly: a check of addresses, certificates and versions before
starting the service.`,
		Example: `  sailmaker workers list
  sailmaker workers list --server http://build.internal:8080 -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return runWorkersList(cmd.Context(), cmd.OutOrStdout(), cfg, lo)
		},
	}
	list.Flags().StringVar(&lo.server, "server", "", "build service URL (default $SAILMAKER_SERVER or server.url; none: probe the configured workers)")
	lo.output = addOutputFlag(list)

	do := &workersDrainOptions{}
	drain := &cobra.Command{
		Use:   "drain NAME",
		Short: "Stop new builds going to a worker and wait for its running ones",
		Long: `Ask the service to send no new builds to the worker (admin role), then wait
until the builds running there have ended, printing how many are left.
The drain lasts until --undo or a restart of the service.`,
		Example: `  sailmaker workers drain bk-1
  sailmaker workers drain bk-1 --no-wait
  sailmaker workers drain bk-1 --undo`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			do.name = args[0]
			if do.timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive", do.timeout)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			c, err := serviceClient(do.server, cfg)
			if err != nil {
				return err
			}
			return runWorkersDrain(cmd.Context(), cmd.OutOrStdout(), c.Client, do)
		},
	}
	drain.Flags().StringVar(&do.server, "server", "", "build service URL (default $SAILMAKER_SERVER or server.url)")
	drain.Flags().DurationVar(&do.timeout, "timeout", 2*time.Hour, "give up waiting after this long (the worker stays drained)")
	drain.Flags().BoolVar(&do.noWait, "no-wait", false, "return at once; running builds go on")
	drain.Flags().BoolVar(&do.undo, "undo", false, "let the worker take builds again")
	cmd.AddCommand(list, drain)
	return cmd
}

func runWorkersList(ctx context.Context, w io.Writer, cfg *config.Config, o *workersListOptions) error {
	var resp *service.WorkersResponse
	if u := serverURL(o.server, cfg); u != "" {
		c, err := serviceClient(o.server, cfg)
		if err != nil {
			return err
		}
		if resp, err = c.Workers(ctx); err != nil {
			return err
		}
	} else {
		p, err := pool.New(pool.Options{Workers: cfg.Workers()})
		if err != nil {
			return err
		}
		defer p.Close()
		p.ProbeNow(ctx)
		resp = &service.WorkersResponse{Workers: p.Status(), BuildKitVersion: p.Version(), Capacity: p.Capacity()}
	}
	return o.output.write(w, workerList{resp})
}

// workerList prints the workers as rows; JSON and YAML are the API's
// response.
type workerList struct{ *service.WorkersResponse }

func (l workerList) MarshalJSON() ([]byte, error) { return json.Marshal(l.WorkersResponse) }

func (workerList) Header() []string {
	return []string{"NAME", "ADDRESS", "STATE", "BUILDKIT", "PLATFORMS", "SLOTS", "BUILDS", "LOST", "LAST ERROR"}
}

func (l workerList) Rows() [][]string {
	rows := make([][]string, len(l.Workers))
	for i, s := range l.Workers {
		state := string(s.State)
		if s.Draining {
			state += ",draining"
		}
		rows[i] = []string{s.Name, s.Address, state, dash(s.BuildKitVersion), dash(strings.Join(s.Platforms, ",")),
			fmt.Sprintf("%d/%d", s.InUse, s.Slots), fmt.Sprint(s.BuildsRun), fmt.Sprint(s.BuildsLost), dash(s.LastError)}
	}
	return rows
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runWorkersDrain(ctx context.Context, w io.Writer, c *service.Client, o *workersDrainOptions) error {
	if o.undo {
		st, err := c.Drain(ctx, o.name, 0, true)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "worker %s takes builds again (%s)\n", st.Name, st.State)
		return nil
	}
	deadline := time.Now().Add(o.timeout)
	wait := time.Duration(0)
	for {
		st, err := c.Drain(ctx, o.name, wait, false)
		if err != nil {
			return err
		}
		switch {
		case st.InUse == 0:
			fmt.Fprintf(w, "worker %s is drained: no build runs there, and no new ones go there (`sailmaker workers drain %s --undo` takes it back)\n", st.Name, st.Name)
			return nil
		case o.noWait:
			fmt.Fprintf(w, "worker %s is draining: %d build(s) still run there; no new ones go there\n", st.Name, st.InUse)
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("worker %s is draining but %d build(s) still run there after %s (it stays drained)", st.Name, st.InUse, o.timeout)
		}
		fmt.Fprintf(w, "worker %s is draining: waiting for %d running build(s)\n", st.Name, st.InUse)
		wait = min(time.Minute, time.Until(deadline)+time.Second)
	}
}
