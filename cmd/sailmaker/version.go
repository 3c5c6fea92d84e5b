package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/internal/version"
)

func init() { subcommands = append(subcommands, newVersionCmd) }

// versionShown is what `sailmaker version` prints.
type versionShown version.Info

func (v *versionShown) WriteText(w io.Writer) error {
	i := version.Info(*v)
	commit := i.Commit
	if commit == "" {
		commit = "unknown"
	} else if i.Modified {
		commit += " (modified)"
	}
	bk := i.BuildKitVersion()
	if i.BuildKit.Pinned != "" && i.BuildKit.Module != "" {
		bk += " (pinned; client module " + i.BuildKit.Module + ")"
	}
	_, err := fmt.Fprintf(w, "sailmaker  %s\ncommit     %s\ngo         %s %s\nbuildkit   %s\n", i.Version, commit, i.Go, i.Platform, bk)
	return err
}

func newVersionCmd(*globalOptions) *cobra.Command {
	var out *outputFlag
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print sailmaker's version and commit, its Go, and the BuildKit it pins",
		Long: `Print sailmaker's version (git describe of the tree it was built from) and
commit, as the Makefile stamps them (else from Go's build info), the Go
version and platform, and the BuildKit version pinned by the Makefile
(BUILDKIT_VERSION), with the BuildKit client module linked in; a
disagreement between the two is reported on stderr.`,
		Example: `  sailmaker version
  sailmaker version -o json
  sailmaker --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			i := version.Get()
			if err := i.Check(); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
			}
			return out.write(cmd.OutOrStdout(), (*versionShown)(&i))
		},
	}
	out = addOutputFlag(cmd, output.Documents...)
	return cmd
}

// versionLine is what --version prints.
func versionLine() string {
	i := version.Get()
	return fmt.Sprintf("sailmaker %s (%s, BuildKit %s)", i.String(), i.Go, i.BuildKitVersion())
}
