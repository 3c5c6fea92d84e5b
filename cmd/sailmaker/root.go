package main

import (
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/config"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	configFile string
	stateDir   string
	logLevel   string
	logFormat  string
}

func (g *globalOptions) load() (*config.Config, error) {
	return config.Load(g.configFile, g.stateDir)
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:           "sailmaker",
		Short:         "Build Istio images from source, hermetically, into an internal registry",
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			lvl, err := logrus.ParseLevel(g.logLevel)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			logrus.SetLevel(lvl)
			logrus.SetOutput(cmd.ErrOrStderr())
			if g.logFormat == "json" {
				logrus.SetFormatter(&logrus.JSONFormatter{})
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", os.Getenv("SAILMAKER_CONFIG"), "config file (YAML); default $SAILMAKER_CONFIG or <state-dir>/config.yaml if present")
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", "", "state directory (default $SAILMAKER_STATE_DIR or /var/lib/sailmaker)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")

	root.SetVersionTemplate("{{.Version}}\n")
	for _, add := range subcommands {
		root.AddCommand(add(g))
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	return root
}

// subcommands register themselves from their own files with init().
var subcommands []func(*globalOptions) *cobra.Command
