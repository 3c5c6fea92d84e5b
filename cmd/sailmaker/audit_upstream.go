package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/audit"
)

// auditUpstreamOptions are the flags of `audit diff upstream`.
type auditUpstreamOptions struct {
	dockerfile string
	sourcePath string
	buildArgs  []string
	platform   string
	allow      []string
	deliberate bool
}

func newAuditDiffUpstreamCmd(g *globalOptions, o *auditOptions) *cobra.Command {
	u := &auditUpstreamOptions{}
	cmd := &cobra.Command{
		Use:   "upstream IMAGE (--dockerfile FILE | --source-path PATH)",
		Short: "Compare an image with a Dockerfile of its upstream source, item by item",
		Long: `Compare an image sailmaker built with the Dockerfile upstream builds it from
(read with BuildKit's own Dockerfile parser), item by item: the base, USER,
WORKDIR, ENV, ENTRYPOINT, CMD, and the files COPY and ADD write against the
files the image adds over its base. What the Dockerfile leaves alone (no
USER, no WORKDIR) is its base's, and the image's must be its own base's.

The Dockerfile is a file (--dockerfile), or a path in the image's source at
the image's revision (--source-path), read from the git mirror that builds
on this machine keep. Build arguments are --build-arg NAME=VALUE; unset, they
are what istio's docker-builder passes: BASE_DISTRIBUTION from the tag
(-distroless tags: distroless, else debug), proxy_version and istio_version
from the image's labels, and TARGETARCH (and the other TARGET* arguments)
from the platform. Of a multi-platform image, --platform picks the image
(default linux/amd64).

Differences sailmaker makes on purpose are allowed with --deliberate (the
list in the README; run with it to see their reasons) or --allow ITEM
(repeatable; an item name or a pattern such as 'file:/var/lib/istio/*').
The exit status is 1 when any other item differs.`,
		Example: `  sailmaker audit diff upstream fixture/pilot:1.0.0 --source-path pilot/docker/Dockerfile.pilot --deliberate
  sailmaker audit diff upstream istio/proxyv2:1.24.2-distroless --dockerfile ~/src/istio/pilot/docker/Dockerfile.proxyv2 --platform linux/arm64 --deliberate
  sailmaker audit diff upstream istio/proxyv2:1.24.2 --dockerfile Dockerfile.proxyv2 --build-arg proxy_version=1ed7d440… -o json`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if (u.dockerfile == "") == (u.sourcePath == "") {
				return fmt.Errorf("give the Dockerfile: --dockerfile FILE or --source-path PATH (one of them)")
			}
			if _, err := parseBuildArgs(u.buildArgs); err != nil {
				return err
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAuditDiffUpstream(cmd, g, o, u, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&u.dockerfile, "dockerfile", "", "the Dockerfile, a file")
	f.StringVar(&u.sourcePath, "source-path", "", "the Dockerfile's path in the image's source, at the image's revision")
	f.StringArrayVar(&u.buildArgs, "build-arg", nil, "a build argument NAME=VALUE (repeatable)")
	f.StringVar(&u.platform, "platform", "linux/amd64", "the image of a multi-platform image to compare")
	f.StringArrayVar(&u.allow, "allow", nil, "an item whose difference is deliberate: a name or pattern (repeatable)")
	f.BoolVar(&u.deliberate, "deliberate", false, "allow the differences sailmaker makes on purpose (the README's list)")
	return cmd
}

// parseBuildArgs reads NAME=VALUE flags.
func parseBuildArgs(values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("--build-arg %q: want NAME=VALUE", v)
		}
		out[k] = val
	}
	return out, nil
}

func runAuditDiffUpstream(cmd *cobra.Command, g *globalOptions, o *auditOptions, u *auditUpstreamOptions, image string) error {
	args, err := parseBuildArgs(u.buildArgs)
	if err != nil {
		return err
	}
	opts := audit.UpstreamOptions{BuildArgs: args, Platform: u.platform, SourcePath: u.sourcePath, DockerfileName: u.dockerfile}
	if u.dockerfile != "" {
		if opts.Dockerfile, err = os.ReadFile(u.dockerfile); err != nil {
			return fmt.Errorf("--dockerfile: %w", err)
		}
	}
	for _, a := range u.allow {
		opts.Allow = append(opts.Allow, audit.Deliberate{Item: a, Reason: "--allow"})
	}
	if u.deliberate {
		opts.Allow = append(opts.Allow, audit.DeliberateDifferences...)
	}
	a, err := o.auditor(cmd, g)
	if err != nil {
		return err
	}
	defer a.Close()
	d, err := a.DiffUpstream(cmd.Context(), image, opts)
	if err != nil {
		return err
	}
	notes := append([]string{fmt.Sprintf("%s (%s) against %s, stages %s", d.Image, d.Platform, d.Dockerfile, strings.Join(d.Stages, " > "))}, d.Reasons()...)
	notes = append(notes, d.Notes...)
	if err := printAudit(cmd, o, d, notes); err != nil {
		return err
	}
	if d.Differences > 0 {
		return fmt.Errorf("diff upstream: %d items differ from %s (%d allowed as deliberate)", d.Differences, d.Dockerfile, d.Allowed)
	}
	return nil
}
