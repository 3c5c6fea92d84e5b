package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/service"
)

func init() { subcommands = append(subcommands, newTokenCmd) }

func newTokenCmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make tokens for the build service",
	}
	var name, role string
	var out *outputFlag
	newCmd := &cobra.Command{
		Use:   "new --name NAME --role ROLE",
		Short: "Print a fresh token, and the line that lets the service accept it",
		Long: `Print a fresh random token on stdout, and on stderr the server.tokens entry
for the service's config: the token's name, role and sha256 (the service
keeps only the hash). Hand the token to its user (SAILMAKER_TOKEN for the
CLI, "Authorization: Bearer <token>" for curl); it is not shown again.

Roles: admin (everything), maintainer (queue and cancel builds, and read),
auditor (read builds and audit queries), ci (the webhook only; the webhook
itself is authenticated by its signature).`,
		Example: `  sailmaker token new --name alice --role maintainer
  sailmaker token new --name grafana --role auditor -o json`,
		PreRunE: func(*cobra.Command, []string) error {
			return checkRole(role)
		},
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return fmt.Errorf("--name is required: it names the token in logs and records")
			}
			token, sum, err := service.NewToken()
			if err != nil {
				return err
			}
			if err := out.write(cmd.OutOrStdout(), &newToken{Name: name, Role: role, Token: token, SHA256: sum}); err != nil {
				return err
			}
			if out.format == output.Table {
				fmt.Fprintf(cmd.ErrOrStderr(), "Add to the service's config, under server.tokens:\n  - {name: %q, role: %s, sha256: %s}\n", name, role, sum)
			}
			return nil
		},
	}
	newCmd.Flags().StringVar(&name, "name", "", "who or what uses the token (recorded as the actor)")
	newCmd.Flags().StringVar(&role, "role", "", "admin, maintainer, auditor or ci")
	out = addOutputFlag(newCmd, output.Documents...)
	_ = newCmd.RegisterFlagCompletionFunc("role", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return roles, cobra.ShellCompDirectiveNoFileComp
	})
	_ = newCmd.MarkFlagRequired("name")
	_ = newCmd.MarkFlagRequired("role")
	cmd.AddCommand(newCmd)
	return cmd
}

var roles = []string{config.RoleAdmin, config.RoleMaintainer, config.RoleAuditor, config.RoleCI}

func checkRole(role string) error {
	if !slices.Contains(roles, role) {
		return fmt.Errorf("--role %q: must be admin, maintainer, auditor or ci", role)
	}
	return nil
}

// newToken is what `token new` prints: -o table gives the token alone
// (and the config line on stderr), json and yaml all of it.
type newToken struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Token  string `json:"token"`
	SHA256 string `json:"sha256"`
}

func (t *newToken) WriteText(w io.Writer) error {
	_, err := fmt.Fprintln(w, t.Token)
	return err
}
