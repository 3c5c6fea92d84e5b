package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/aptrepo"
)

func init() { subcommands = append(subcommands, newRepoCmd) }

func newRepoCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "An apt repository of Debian packages: build it, serve it",
		Long: `An apt repository (pool/, dists/<suite>/..., Release signed with the OpenPGP
key of signing.aptKey) made from .deb files, and a plain HTTP server for it,
for machines that install the packages with apt-get.`,
	}
	cmd.AddCommand(newRepoBuildCmd(g), newRepoServeCmd(g))
	return cmd
}

type repoBuildOptions struct {
	out       string
	suite     string
	component string
	origin    string
	key       string
	archs     []string
	output    *outputFlag
	debs      []string
}

func newRepoBuildCmd(g *globalOptions) *cobra.Command {
	o := &repoBuildOptions{}
	cmd := &cobra.Command{
		Use:   "build --out DIR [DEB...]",
		Short: "Add .deb files to an apt repository directory and sign its indices",
		Long: `Add the .deb files to the apt repository in --out (made if missing): each is
copied to pool/, then dists/<suite>/<component>/binary-<arch>/Packages(.gz)
and dists/<suite>/Release, InRelease and Release.gpg are written again,
signed with the OpenPGP key of --key (default: signing.aptKey in the config,
or $SAILMAKER_APT_KEY; make one with 'sailmaker signing keygen --openpgp').

Packages already in the pool stay. A package whose name, version and
architecture are in the repository already must be the same bytes: a
published version never changes (raise the version instead). The output is
the same bytes for the same packages and key; the Release's Date is the
newest package's time.`,
		Example: `  sailmaker repo build --out /srv/apt istio-cni_1.24.2-1_amd64.deb istioctl-versions_1.24.2+1.1024002_amd64.deb
  sailmaker repo build --out /srv/apt --key /etc/sailmaker/sailmaker-apt.asc --suite stable -o json *.deb`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.out == "" {
				return errors.New("--out: give the repository directory")
			}
			if o.key == "" {
				cfg, err := g.load()
				if err != nil {
					return err
				}
				o.key = cfg.Signing.AptKey
			}
			if o.key == "" {
				return errors.New("no apt signing key: give --key FILE, or signing.aptKey in the config ($SAILMAKER_APT_KEY); 'sailmaker signing keygen --openpgp' makes one")
			}
			o.debs = args
			return runRepoBuild(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.out, "out", "", "repository directory (required)")
	cmd.Flags().StringVar(&o.suite, "suite", "stable", "suite (distribution) clients name in sources.list")
	cmd.Flags().StringVar(&o.component, "component", "main", "component")
	cmd.Flags().StringVar(&o.origin, "origin", "sailmaker", "Origin and Label of the Release file")
	cmd.Flags().StringVar(&o.key, "key", "", "OpenPGP secret key that signs Release (default: signing.aptKey, $SAILMAKER_APT_KEY)")
	cmd.Flags().StringSliceVar(&o.archs, "arch", nil, "architectures to index even without packages of their own")
	o.output = addOutputFlag(cmd)
	return cmd
}

func runRepoBuild(ctx context.Context, stdout io.Writer, o *repoBuildOptions) error {
	signer, err := aptrepo.LoadSigner(o.key)
	if err != nil {
		return err
	}
	res, err := aptrepo.Build(ctx, o.out, o.debs, aptrepo.Options{
		Suite: o.suite, Component: o.component, Origin: o.origin, Label: o.origin,
		Architectures: o.archs, Signer: signer,
	})
	if err != nil {
		return err
	}
	logrus.WithFields(logrus.Fields{
		"dir": o.out, "suite": res.Suite, "packages": len(res.Packages),
		"date": res.Date.Format(time.RFC3339), "key": res.Fingerprint,
	}).Info("apt repository written")
	return o.output.write(stdout, repoTable{res})
}

// repoTable prints a repository's packages as rows.
type repoTable struct{ *aptrepo.Result }

func (repoTable) Header() []string { return []string{"PACKAGE", "VERSION", "ARCH", "STATUS", "FILE"} }

func (r repoTable) Rows() [][]string {
	rows := make([][]string, len(r.Packages))
	for i, p := range r.Packages {
		rows[i] = []string{p.Name, p.Version, p.Architecture, p.Status, p.Filename}
	}
	return rows
}

type repoServeOptions struct {
	listen string
	dir    string
	// ready, when set, receives the address the server listens on.
	ready chan<- string
}

func newRepoServeCmd(_ *globalOptions) *cobra.Command {
	o := &repoServeOptions{}
	cmd := &cobra.Command{
		Use:   "serve --dir DIR [--listen ADDR]",
		Short: "Serve an apt repository directory over HTTP, read-only",
		Long: `Serve the apt repository in --dir (made by 'sailmaker repo build') over plain
HTTP until interrupted: GET and HEAD of its files, no directory listings,
nothing outside the directory. apt checks what it downloads against the
signed Release file, so plain HTTP is what apt repositories usually use; the
machines that install from it need the public key (sailmaker-apt.gpg) for
signed-by=.`,
		Example: `  sailmaker repo serve --dir /srv/apt
  sailmaker repo serve --dir /srv/apt --listen 0.0.0.0:8090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRepoServe(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8090", "address to listen on")
	cmd.Flags().StringVar(&o.dir, "dir", "", "repository directory (required)")
	return cmd
}

func runRepoServe(ctx context.Context, o *repoServeOptions) error {
	if o.dir == "" {
		return errors.New("--dir: give the repository directory ('sailmaker repo build --out DIR' makes one)")
	}
	suites, err := filepath.Glob(filepath.Join(o.dir, "dists", "*", "InRelease"))
	if err != nil || len(suites) == 0 {
		return fmt.Errorf("%s is not an apt repository (no dists/<suite>/InRelease): make one with 'sailmaker repo build --out %s DEB...'", o.dir, o.dir)
	}
	h, err := aptrepo.Handler(o.dir)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	addr := l.Addr().String()
	for _, s := range suites {
		suite := filepath.Base(filepath.Dir(s))
		logrus.WithFields(logrus.Fields{"dir": o.dir, "url": "http://" + addr + "/", "suite": suite}).
			Infof("apt repository serving; sources line: deb [signed-by=/etc/apt/keyrings/sailmaker-apt.gpg] http://%s/ %s %s", addr, suite, components(o.dir, suite))
	}
	if o.ready != nil {
		o.ready <- addr
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving the apt repository: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("stopping the apt repository server: %w", err)
	}
	logrus.Info("apt repository stopped")
	return nil
}

// components lists the components of a suite, from its Release file.
func components(dir, suite string) string {
	data, err := os.ReadFile(filepath.Join(dir, "dists", suite, "Release"))
	if err != nil {
		return "main"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Components:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "main"
}
