package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/service"
)

// Shell completion (cobra's `sailmaker completion bash|zsh|fish|powershell`)
// completes recipe ids, base image names, build ids and -o values. What it
// cannot read it leaves out quietly: a completion never prints an error.

// completeRecipeIDs completes the ids of the embedded recipes and of those
// stored in the state directory, and with bases the embedded base images'
// names, for the first argument only.
func completeRecipeIDs(g *globalOptions, bases bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ids []string
		for _, e := range recipes.List() {
			if e.Kind == recipes.KindRecipe || bases {
				ids = append(ids, e.ID+"\t"+e.Description)
			}
		}
		if cfg, err := g.load(); err == nil {
			for _, id := range storedRecipeIDs(cfg) {
				ids = append(ids, id+"\tstored in "+storedRecipeDir(cfg))
			}
		}
		return withPrefix(ids, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeBaseNames completes the embedded base images' names, any number
// of them.
func completeBaseNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var names []string
	for _, e := range recipes.List() {
		if e.Kind == recipes.KindBaseImage && !slices.Contains(args, e.ID) {
			names = append(names, e.ID+"\t"+e.Description)
		}
	}
	return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeBuildIDs completes the ids of the builds of the configured
// service (--server, $SAILMAKER_SERVER or server.url), newest first; with
// no service, or one that does not answer within two seconds, nothing.
func completeBuildIDs(g *globalOptions, server *string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cfg, err := g.load()
		if err != nil || serverURL(*server, cfg) == "" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := serviceClient(*server, cfg)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		builds, err := c.List(ctx, service.ListFilter{Limit: 200})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ids := make([]string, 0, len(builds))
		for _, b := range builds {
			ids = append(ids, b.ID+"\t"+b.Recipe+" "+string(b.State))
		}
		return withPrefix(ids, toComplete), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}

// withPrefix keeps the completions (value, then a tab and its description)
// whose value starts with prefix.
func withPrefix(cs []string, prefix string) []string {
	var out []string
	for _, c := range cs {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// completeOthers gives completion to the commands whose own files set none:
// build's recipe argument and its -o (build.go is being reworked; it may
// take these over).
func completeOthers(root *cobra.Command, g *globalOptions) {
	for _, c := range root.Commands() {
		if c.Name() != "build" {
			continue
		}
		if c.ValidArgsFunction == nil {
			c.ValidArgsFunction = completeRecipeIDs(g, false)
		}
	}
}
