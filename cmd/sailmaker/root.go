package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/config"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	configFile string
	stateDir   string
	logLevel   choiceFlag
	logFormat  choiceFlag
}

// Log levels and formats --log-level and --log-format take.
var (
	logLevels  = []string{"trace", "debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

func (g *globalOptions) load() (*config.Config, error) {
	return config.Load(g.configFile, g.stateDir)
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{
		logLevel:  choiceFlag{value: "info", choices: logLevels},
		logFormat: choiceFlag{value: "text", choices: logFormats},
	}
	root := &cobra.Command{
		Use:           "sailmaker",
		Short:         "Build Istio images from source, hermetically, into an internal registry",
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			lvl, err := logrus.ParseLevel(g.logLevel.value)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err) // cannot happen: the flag took only logLevels
			}
			logrus.SetLevel(lvl)
			logrus.SetOutput(cmd.ErrOrStderr())
			if g.logFormat.value == "json" {
				logrus.SetFormatter(&logrus.JSONFormatter{})
			} else {
				logrus.SetFormatter(&logrus.TextFormatter{})
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", os.Getenv("SAILMAKER_CONFIG"), "config file (YAML); default $SAILMAKER_CONFIG or <state-dir>/config.yaml if present")
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", "", "state directory (default $SAILMAKER_STATE_DIR or /var/lib/sailmaker)")
	root.PersistentFlags().Var(&g.logLevel, "log-level", "log level: "+strings.Join(logLevels, ", "))
	root.PersistentFlags().Var(&g.logFormat, "log-format", "log format: text (for people) or json (for log collectors)")
	g.logLevel.complete(root, "log-level")
	g.logFormat.complete(root, "log-format")

	root.SetVersionTemplate("{{.Version}}\n")
	for _, add := range subcommands {
		root.AddCommand(add(g))
	}
	completeOthers(root, g)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	return root
}

// choiceFlag is a flag that takes one of a few words, checked while flags
// are parsed; a wrong one is refused with the list.
type choiceFlag struct {
	value   string
	choices []string
}

func (c *choiceFlag) String() string { return c.value }
func (c *choiceFlag) Type() string   { return "string" }

func (c *choiceFlag) Set(s string) error {
	if !slices.Contains(c.choices, s) {
		return fmt.Errorf("%q is not one of %s", s, strings.Join(c.choices, ", "))
	}
	c.value = s
	return nil
}

func (c *choiceFlag) complete(cmd *cobra.Command, name string) {
	_ = cmd.RegisterFlagCompletionFunc(name, func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return withPrefix(c.choices, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// subcommands register themselves from their own files with init().
var subcommands []func(*globalOptions) *cobra.Command
