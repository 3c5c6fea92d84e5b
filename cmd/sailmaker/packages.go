package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/audit"
)

func init() { subcommands = append(subcommands, newPackagesCmd) }

func newPackagesCmd(g *globalOptions) *cobra.Command {
	o := &auditOptions{concurrency: 8}
	cmd := &cobra.Command{
		Use:   "packages",
		Short: "The Debian packages builds pushed to the registry: list them, show one",
		Long: `The Debian packages builds make next to the images (a recipe's spec.packages:
istio-cni, and istioctl-versions, made after each push from every release's
istioctl in the registry), as the registry holds them: OCI artifacts of
artifactType application/vnd.debian.binary-package with the .deb as their
one layer, each with its provenance, SBOM and signature.

Read-only, as 'sailmaker audit' (the same flags for the registry and the
public key).`,
		Example: `  sailmaker packages list
  sailmaker packages list --binaries -o json
  sailmaker packages show istioctl-versions
  sailmaker packages show istio-cni=1.24.2-1 -o yaml
  sailmaker packages show istio/istio-cni:1.24.2-1`,
	}
	cmd.AddCommand(newPackagesListCmd(g, o), newPackagesShowCmd(g, o))
	pf := cmd.PersistentFlags()
	pf.StringSliceVar(&o.prefixes, "prefix", nil, "only repositories equal to or under these prefixes (repeatable; default all)")
	pf.StringVar(&o.key, "key", os.Getenv("SAILMAKER_SIGNING_PUB"), "public key (PEM file) to verify signatures with; default $SAILMAKER_SIGNING_PUB, else signing.key's public half")
	return cmd
}

type packagesListOptions struct {
	filter audit.PackagesFilter
	output *outputFlag
}

func newPackagesListCmd(g *globalOptions, ao *auditOptions) *cobra.Command {
	o := &packagesListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Every Debian package in the registry, newest version first",
		Long: `List every Debian package in the registry: name, version, architecture,
repository and tag, digest, the releases a multi-version package holds, and
whether it has provenance, an SBOM and a signature. --binaries also lists the
releases' programs the multi-version packages are made from.`,
		Example: `  sailmaker packages list
  sailmaker packages list --name 'istio*' -o csv
  sailmaker packages list --binaries -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPackagesList(cmd, g, ao, o)
		},
	}
	cmd.Flags().StringVar(&o.filter.Name, "name", "", "only packages of this name, or a glob such as 'istio*'")
	cmd.Flags().BoolVar(&o.filter.Binaries, "binaries", false, "also list the releases' binaries (istioctl) the multi-version packages are made from")
	o.output = addOutputFlag(cmd)
	return cmd
}

func runPackagesList(cmd *cobra.Command, g *globalOptions, ao *auditOptions, o *packagesListOptions) error {
	ao.output = o.output
	a, err := ao.auditor(cmd, g)
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.Packages(cmd.Context(), o.filter)
	if err != nil {
		return err
	}
	return printAudit(cmd, ao, packagesTable{res}, nil)
}

// packagesTable prints a short table for people; CSV, JSON and YAML have
// every field.
type packagesTable struct{ *audit.PackagesResult }

func (t packagesTable) WriteText(w io.Writer) error {
	if len(t.Packages) == 0 {
		_, err := fmt.Fprintf(w, "no packages in %s\n", t.Registry)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tVERSION\tARCH\tREPOSITORY\tTAG\tDIGEST\tHOLDS\tSIGNATURE")
	for _, i := range t.Packages {
		p := i.Package
		name := p.Name
		if i.Kind == audit.KindBinary {
			name += " (binary)"
		}
		holds := strings.Join(p.Holds, " ")
		if holds == "" {
			holds = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, p.Version, p.Architecture, i.Repository, i.Tag, i.Digest, holds, i.Signature)
	}
	return tw.Flush()
}

func newPackagesShowCmd(g *globalOptions, ao *auditOptions) *cobra.Command {
	var out *outputFlag
	cmd := &cobra.Command{
		Use:   "show NAME[=VERSION] | REPOSITORY:TAG",
		Short: "One package: its control fields, its files, provenance, SBOM and signature",
		Long: `Show one package: by name (the newest version, or NAME=VERSION), or by
repository:tag / repository@sha256:…. It prints the control fields and the
files of the .deb (what dpkg-deb --info and --contents show), and what
'sailmaker audit show' says about the artifact: provenance, SBOM (the Go
modules linked into its programs, its Depends), signature, ledger history
and findings.`,
		Example: `  sailmaker packages show istioctl-versions
  sailmaker packages show istio-cni=1.24.2-1 -o json
  sailmaker packages show fixture/istio-cni:1.0.0-1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ao.output = out
			a, err := ao.auditor(cmd, g)
			if err != nil {
				return err
			}
			defer a.Close()
			d, err := a.ShowPackage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printAudit(cmd, ao, d, nil)
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}
