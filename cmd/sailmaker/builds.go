package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/service"
)

func init() { subcommands = append(subcommands, newBuildsCmd) }

// serverURL is the service the CLI talks to: --server, else server.url
// ($SAILMAKER_SERVER); empty means none.
func serverURL(flag string, cfg *config.Config) string {
	if flag != "" {
		return flag
	}
	return cfg.Server.URL
}

// serverOrigin says where serverURL's answer came from: --server,
// $SAILMAKER_SERVER, or server.url in the config file.
func serverOrigin(flag string, cfg *config.Config) string {
	if flag != "" {
		return "--server"
	}
	return cfg.Origin("server.url")
}

// remoteService is a client of the configured service and where its URL
// came from.
type remoteService struct {
	*service.Client
	// Origin is --server, $SAILMAKER_SERVER or "server.url in FILE".
	Origin string
}

// serviceClient is a client for the configured service, with the token
// from $SAILMAKER_TOKEN or server.token.
func serviceClient(flag string, cfg *config.Config) (*remoteService, error) {
	u := serverURL(flag, cfg)
	if u == "" {
		return nil, errors.New("no build service given: pass --server URL, or set SAILMAKER_SERVER (or server.url in the config)")
	}
	c, err := service.NewClient(u, cfg.Server.Token)
	if err != nil {
		return nil, fmt.Errorf("the build service URL from %s: %w", serverOrigin(flag, cfg), err)
	}
	return &remoteService{Client: c, Origin: serverOrigin(flag, cfg)}, nil
}

func newBuildsCmd(g *globalOptions) *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "builds",
		Short: "List, show, follow and cancel the builds of a build service",
		Long: `Talk to a running ` + "`sailmaker serve`" + `: --server URL (or SAILMAKER_SERVER, or
server.url in the config), with the token in SAILMAKER_TOKEN (or server.token).`,
		Example: `  sailmaker builds list --server http://127.0.0.1:8080
  sailmaker builds list --state queued,building -o json
  sailmaker builds show 20250102-150405-3fa9c2d1
  sailmaker builds logs 20250102-150405-3fa9c2d1 -f
  sailmaker builds cancel 20250102-150405-3fa9c2d1`,
	}
	cmd.PersistentFlags().StringVar(&server, "server", "", "build service URL (default $SAILMAKER_SERVER or server.url)")
	client := func() (*remoteService, error) {
		cfg, err := g.load()
		if err != nil {
			return nil, err
		}
		return serviceClient(server, cfg)
	}

	var state, recipe, since string
	var limit int
	var listOut *outputFlag
	list := &cobra.Command{
		Use:     "list",
		Short:   "List builds, newest first",
		Example: `  sailmaker builds list --state failed --since 24h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			f := service.ListFilter{Recipe: recipe, Limit: limit}
			for _, s := range strings.Split(state, ",") {
				if s = strings.TrimSpace(s); s != "" {
					f.States = append(f.States, service.State(s))
				}
			}
			if since != "" {
				if f.Since, err = service.ParseSince(since, time.Now()); err != nil {
					return err
				}
			}
			builds, err := c.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			return listOut.write(cmd.OutOrStdout(), buildList(builds))
		},
	}
	list.Flags().StringVar(&state, "state", "", "only builds in these states (comma-separated: queued, fetching, building, pushing, succeeded, failed, cancelled)")
	list.Flags().StringVar(&recipe, "recipe", "", "only builds of this recipe (istio@1.24.2) or recipe name (istio)")
	list.Flags().StringVar(&since, "since", "", "only builds asked for since this time (RFC 3339) or this long ago (24h)")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many builds")
	listOut = addOutputFlag(list)

	var showOut *outputFlag
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one build: state, timings, images and digests, error",
		Example: `  sailmaker builds show 20250102-150405-3fa9c2d1
  sailmaker builds show 20250102-150405-3fa9c2d1 -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeBuildIDs(g, &server),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			b, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showOut.write(cmd.OutOrStdout(), (*buildShown)(b))
		},
	}
	showOut = addOutputFlag(show, output.Documents...)

	var follow bool
	logs := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a build's log; -f follows it until the build ends",
		Example: `  sailmaker builds logs 20250102-150405-3fa9c2d1
  sailmaker builds logs 20250102-150405-3fa9c2d1 -f`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeBuildIDs(g, &server),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			_, err = c.Log(cmd.Context(), args[0], 0, follow, cmd.OutOrStdout(), 2*time.Minute)
			if err != nil && cmd.Context().Err() != nil {
				return nil // Ctrl-C: stop following
			}
			return err
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the build ends")

	cancel := &cobra.Command{
		Use:               "cancel ID",
		Short:             "Cancel a queued or running build (its BuildKit solve is cancelled)",
		Example:           `  sailmaker builds cancel 20250102-150405-3fa9c2d1`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeBuildIDs(g, &server),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			b, err := c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if b.State == service.StateCancelled {
				fmt.Fprintf(cmd.OutOrStdout(), "build %s cancelled\n", b.ID)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "build %s is being cancelled (still %s)\n", b.ID, b.State)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show, logs, cancel)
	return cmd
}

// buildList is what `builds list` prints: the builds' JSON as the API
// gives it, or a row per build.
type buildList []service.Build

func (l buildList) Header() []string {
	return []string{"ID", "RECIPE", "STATE", "ACTOR", "CREATED", "DURATION"}
}

func (l buildList) Rows() [][]string {
	rows := make([][]string, len(l))
	for i := range l {
		b := &l[i]
		rows[i] = []string{b.ID, b.Recipe, string(b.State), b.Trigger.Actor, b.Created.Local().Format("2006-01-02 15:04:05"), buildDuration(b)}
	}
	return rows
}

func buildDuration(b *service.Build) string {
	if b.Started == nil {
		return "-"
	}
	end := time.Now()
	if b.Finished != nil {
		end = *b.Finished
	}
	return end.Sub(*b.Started).Round(time.Second).String()
}

// buildShown is what `builds show` prints: the build's JSON as the API
// gives it, or the facts for people.
type buildShown service.Build

func (bs *buildShown) WriteText(w io.Writer) error {
	b := (*service.Build)(bs)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", b.ID)
	fmt.Fprintf(tw, "Recipe:\t%s (%s, %s)\n", b.Recipe, b.Source, b.RecipeDigest)
	fmt.Fprintf(tw, "State:\t%s\n", b.State)
	trig := b.Trigger.Actor + " (" + b.Trigger.Kind
	if b.Trigger.DeliveryID != "" {
		trig += ", delivery " + b.Trigger.DeliveryID
	}
	fmt.Fprintf(tw, "Asked by:\t%s)\n", trig)
	fmt.Fprintf(tw, "Created:\t%s\n", b.Created.Local().Format(time.RFC3339))
	if b.Started != nil {
		fmt.Fprintf(tw, "Started:\t%s\n", b.Started.Local().Format(time.RFC3339))
	}
	if b.Finished != nil {
		fmt.Fprintf(tw, "Finished:\t%s (%s)\n", b.Finished.Local().Format(time.RFC3339), buildDuration(b))
	}
	fmt.Fprintf(tw, "Attempts:\t%d\n", b.Attempts)
	if b.Worker != "" {
		fmt.Fprintf(tw, "Worker:\t%s\n", b.Worker)
	}
	if b.Force {
		fmt.Fprintf(tw, "Force:\ttrue\n")
	}
	if t := b.Timings; t != nil {
		fmt.Fprintf(tw, "Timings:\tfetch %.1fs, solve %.1fs, assemble %.1fs, push %.1fs%s, total %.1fs\n", t.Fetch.Seconds(), t.Solve.Seconds(), t.Assemble.Seconds(), t.Push.Seconds(), checkTiming(*t), t.Total.Seconds())
	}
	if b.UpToDate {
		fmt.Fprintf(tw, "Up to date:\tthe registry had the images from the same inputs; nothing built or pushed\n")
	}
	for _, in := range b.Interruptions {
		fmt.Fprintf(tw, "Interrupted:\t%s, %s\n", in.Time.Local().Format(time.RFC3339), in.Reason)
	}
	if b.Error != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", b.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(b.Images) > 0 {
		fmt.Fprintln(w)
		return printImages(w, b.Images, "table")
	}
	return nil
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runRemoteBuild queues a build on the service and follows its log to
// stderr; the result table goes to stdout as with a local build.
func runRemoteBuild(ctx context.Context, stdout, stderr io.Writer, c *remoteService, args []string, o *buildOptions) error {
	// A user who meant to build here learns why nothing builds here.
	fmt.Fprintf(stderr, "building on the service at %s (from %s), not on this machine\n", c.URL, c.Origin)
	if o.envoyFile != "" || len(o.envoyFiles) > 0 {
		return errors.New("--envoy-file works only for local builds: the service downloads Envoy itself (give --envoy-sha256)")
	}
	if o.checkReproducible {
		return errors.New("--check-reproducible works only for local builds")
	}
	req := service.SubmitRequest{Force: o.force, EnvoySHA256: o.envoySHA256, EnvoySHA256ByArch: o.envoySHA256ByArch(), Platforms: o.platforms}
	if o.file != "" {
		data, err := os.ReadFile(o.file)
		if err != nil {
			return fmt.Errorf("reading recipe: %w", err)
		}
		if req.Recipe, err = service.RecipeDocument(data); err != nil {
			return fmt.Errorf("%s: %w", o.file, err)
		}
	} else {
		id, _ := json.Marshal(args[0])
		req.Recipe = id
	}
	b, created, err := c.Submit(ctx, req)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "queued build %s of %s on %s\n", b.ID, b.Recipe, c.URL)
	} else {
		fmt.Fprintf(stderr, "build %s of %s was already %s on %s: following it\n", b.ID, b.Recipe, b.State, c.URL)
	}
	final, err := c.Log(ctx, b.ID, 0, true, stderr, 2*time.Minute)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following build %s; it goes on in the service (`sailmaker builds cancel %s --server %s` cancels it)", b.ID, b.ID, c.URL)
		}
		return fmt.Errorf("following build %s: %w", b.ID, err)
	}
	if final.State != service.StateSucceeded {
		return fmt.Errorf("build %s %s: %s", final.ID, final.State, final.Error)
	}
	if final.UpToDate {
		fmt.Fprintf(stderr, "%s is up to date: the registry has its images from the same inputs; nothing built, nothing pushed\n", final.Recipe)
	}
	if t := final.Timings; o.timings && t != nil {
		fmt.Fprintf(stderr, "timings: fetch %.1fs, solve %.1fs, assemble %.1fs, push %.1fs%s, total %.1fs\n", t.Fetch.Seconds(), t.Solve.Seconds(), t.Assemble.Seconds(), t.Push.Seconds(), checkTiming(*t), t.Total.Seconds())
	}
	return printResult(stdout, final.Result(), o)
}

// checkTiming is ", check <seconds>" for a build that checked its
// reproducibility (the second build is part of the total), else "".
func checkTiming(t api.Timings) string {
	if t.Check == 0 {
		return ""
	}
	return fmt.Sprintf(", check %.1fs", t.Check.Seconds())
}
