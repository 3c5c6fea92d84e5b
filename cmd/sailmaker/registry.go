package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/registry"
)

func init() { subcommands = append(subcommands, newRegistryCmd) }

func newRegistryCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "The embedded OCI registry",
	}
	cmd.AddCommand(newRegistryServeCmd(g))
	return cmd
}

type registryServeOptions struct {
	addr string
	root string
}

func newRegistryServeCmd(g *globalOptions) *cobra.Command {
	o := &registryServeOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the embedded OCI registry (CNCF distribution, content on disk)",
		Long: `Serve the embedded OCI registry in the foreground until interrupted.

It is the CNCF distribution registry run in-process with filesystem storage,
so a restart loses nothing. It listens on loopback unless told otherwise.`,
		Example: `  sailmaker registry serve
  sailmaker registry serve --addr 127.0.0.1:5000 --root /var/lib/sailmaker/registry`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if o.addr == "" {
				o.addr = cfg.Registry.Address
			}
			if o.root == "" {
				o.root = cfg.Registry.Root
			}
			return runRegistryServe(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.addr, "addr", "", "listen address (default: registry.address, 127.0.0.1:5000)")
	cmd.Flags().StringVar(&o.root, "root", "", "content directory (default: <state-dir>/registry)")
	return cmd
}

func runRegistryServe(ctx context.Context, o *registryServeOptions) error {
	srv, err := registry.NewServer(ctx, o.root)
	if err != nil {
		return err
	}
	if err := srv.Start(o.addr); err != nil {
		return err
	}
	logrus.WithFields(logrus.Fields{"addr": srv.Addr(), "root": o.root}).Info("registry serving")
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(shutdown); err != nil {
		return fmt.Errorf("stopping the registry: %w", err)
	}
	logrus.Info("registry stopped")
	return nil
}
