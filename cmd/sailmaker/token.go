package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/service"
)

func init() { subcommands = append(subcommands, newTokenCmd) }

func newTokenCmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make tokens for the build service",
	}
	var name, role, output string
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
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch role {
			case config.RoleAdmin, config.RoleMaintainer, config.RoleAuditor, config.RoleCI:
			default:
				return fmt.Errorf("--role %q: must be admin, maintainer, auditor or ci", role)
			}
			if name == "" {
				return fmt.Errorf("--name is required: it names the token in logs and records")
			}
			token, sum, err := service.NewToken()
			if err != nil {
				return err
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]string{"name": name, "role": role, "token": token, "sha256": sum})
			case "text":
				fmt.Fprintln(cmd.OutOrStdout(), token)
				fmt.Fprintf(cmd.ErrOrStderr(), "Add to the service's config, under server.tokens:\n  - {name: %q, role: %s, sha256: %s}\n", name, role, sum)
				return nil
			default:
				return fmt.Errorf("unknown output format %q: use text or json", output)
			}
		},
	}
	newCmd.Flags().StringVar(&name, "name", "", "who or what uses the token (recorded as the actor)")
	newCmd.Flags().StringVar(&role, "role", "", "admin, maintainer, auditor or ci")
	newCmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = newCmd.MarkFlagRequired("name")
	_ = newCmd.MarkFlagRequired("role")
	cmd.AddCommand(newCmd)
	return cmd
}
