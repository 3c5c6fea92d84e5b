package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/internal/devenv"
)

func init() { subcommands = append(subcommands, newDevCmd) }

func newDevCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Start, stop and inspect the local buildkitd and embedded registry",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Start the embedded registry and buildkitd in the background (reuses running ones)",
		Example: `  sailmaker dev up
  sailmaker --state-dir /srv/sailmaker dev up`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			st, err := devenv.Up(cmd.Context(), cfg, logrus.StandardLogger())
			if err != nil {
				return err
			}
			return printStatus(cmd, st, "table")
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "down",
		Short:   "Stop what `dev up` started",
		Example: `  sailmaker dev down`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return devenv.Down(cmd.Context(), cfg, logrus.StandardLogger())
		},
	})
	var output string
	status := &cobra.Command{
		Use:     "status",
		Short:   "Say whether the registry and buildkitd answer",
		Example: `  sailmaker dev status -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return printStatus(cmd, devenv.Check(cmd.Context(), cfg), output)
		},
	}
	status.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.AddCommand(status)
	return cmd
}

func printStatus(cmd *cobra.Command, st *devenv.Status, output string) error {
	switch output {
	case "json":
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "table":
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "COMPONENT\tADDRESS\tSTATE")
		fmt.Fprintf(w, "registry\t%s\t%s\n", st.Registry, upDown(st.RegistryUp))
		fmt.Fprintf(w, "buildkitd\t%s\t%s\n", st.BuildKit, upDown(st.BuildKitUp))
		fmt.Fprintf(w, "state\t%s\t\n", st.StateDir)
		return w.Flush()
	default:
		return fmt.Errorf("unknown output format %q: use table or json", output)
	}
}

func upDown(up bool) string {
	if up {
		return "running"
	}
	return "not running"
}
