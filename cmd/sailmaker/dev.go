package main

import (
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
	var upOut *outputFlag
	up := &cobra.Command{
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
			return upOut.write(cmd.OutOrStdout(), (*devStatus)(st))
		},
	}
	upOut = addOutputFlag(up)
	cmd.AddCommand(up)
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
	var statusOut *outputFlag
	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether the registry and buildkitd answer",
		Example: `  sailmaker dev status
  sailmaker dev status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return statusOut.write(cmd.OutOrStdout(), (*devStatus)(devenv.Check(cmd.Context(), cfg)))
		},
	}
	statusOut = addOutputFlag(status)
	cmd.AddCommand(status)
	return cmd
}

// devStatus is what `dev up` and `dev status` print: devenv.Status as JSON,
// or a row per component.
type devStatus devenv.Status

func (st *devStatus) Header() []string { return []string{"COMPONENT", "ADDRESS", "STATE"} }

func (st *devStatus) Rows() [][]string {
	return [][]string{
		{"registry", st.Registry, upDown(st.RegistryUp)},
		{"buildkitd", st.BuildKit, upDown(st.BuildKitUp)},
		{"state", st.StateDir, ""},
	}
}

func upDown(up bool) string {
	if up {
		return "running"
	}
	return "not running"
}
