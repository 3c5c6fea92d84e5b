package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/output"
)

// The commands that print data and the formats each takes: csv only where
// the result is rows.
var outputCommands = map[string][]output.Format{
	"recipes list":        output.Formats,
	"recipes show":        output.Documents,
	"recipes validate":    output.Formats,
	"base list":           output.Formats,
	"base build":          output.Formats,
	"build":               output.Formats,
	"builds list":         output.Formats,
	"builds show":         output.Documents,
	"audit images":        output.Formats,
	"audit show":          output.Formats,
	"audit verify":        output.Formats,
	"audit uses":          output.Formats,
	"audit diff":          output.Formats,
	"audit diff upstream": output.Formats,
	"audit ledger":        output.Formats,
	"dev up":              output.Formats,
	"dev status":          output.Formats,
	"token new":           output.Documents,
	"signing keygen":      output.Documents,
	"version":             output.Documents,
	"demo":                output.Formats,
	"bench":               {output.Table, output.JSON},
	"repo build":          output.Formats,
	"workers list":        output.Formats,
	"certs new":           output.Documents,
	"packages list":       output.Formats,
	"packages show":       output.Formats,
}

// countingListener accepts connections and counts them: anything a command
// dials (registry, service, buildkitd) is counted.
func countingListener(t *testing.T) (addr string, dialled *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	dialled = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), dialled
}

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

func commandPath(c *cobra.Command) string {
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}

// Every command that prints data takes -o with the one grammar, and a wrong
// -o fails before any work: no registry, service or buildkitd is dialled,
// no state directory made.
func TestOneOutputGrammar(t *testing.T) {
	seen := map[string]bool{}
	walk(newRootCmd(), func(c *cobra.Command) {
		f := c.Flag("output")
		if commandPath(c) == "build" { // build's --output is where the images go: -o is --format
			f = c.Flag("format")
		}
		if f == nil || !c.Runnable() {
			return
		}
		path := commandPath(c)
		allowed, ok := outputCommands[path]
		if !assert.True(t, ok, "%s has -o but is not in outputCommands", path) {
			return
		}
		seen[path] = true
		assert.Equal(t, "o", f.Shorthand, path)
		assert.Equal(t, "table", f.DefValue, path)
		assert.Contains(t, f.Usage, output.List(allowed), path)
	})
	for path := range outputCommands {
		assert.True(t, seen[path], "%s has no -o", path)
	}

	addr, dialled := countingListener(t)
	for path, allowed := range outputCommands {
		args := strings.Fields(path)
		for _, bad := range []string{"xml", "text", "CSV"} {
			state := filepath.Join(t.TempDir(), "state")
			t.Setenv("SAILMAKER_REGISTRY", addr)
			t.Setenv("SAILMAKER_SERVER", "http://"+addr)
			t.Setenv("BUILDKIT_HOST", "tcp://"+addr)
			_, _, err := runCLI(t, state, append(args, "-o", bad)...)
			require.Error(t, err, "%s -o %s", path, bad)
			assert.Contains(t, err.Error(), `unknown output format "`+bad+`": use `+output.List(allowed), path)
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.NoDirExists(t, state, "%s -o %s made the state directory", path, bad)
		}
		if !slices.Contains(allowed, output.CSV) {
			_, _, err := runCLI(t, filepath.Join(t.TempDir(), "state"), append(args, "-o", "csv")...)
			assert.ErrorContains(t, err, `output format "csv" does not apply here: use `+output.List(allowed), path)
		}
	}
	assert.Zero(t, dialled.Load(), "a wrong -o dialled something")
}

// complete runs cobra's hidden __complete command, as the shell scripts of
// `sailmaker completion` do, and returns the completions (without their
// descriptions) and the directive line.
func complete(t *testing.T, state string, args ...string) ([]string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(append([]string{"__complete", "--state-dir", state}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	require.NoError(t, root.ExecuteContext(context.Background()), errb.String())
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	require.NotEmpty(t, lines)
	directive := lines[len(lines)-1]
	var values []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		values = append(values, v)
	}
	return values, directive
}

func TestCompletion(t *testing.T) {
	for _, k := range []string{"SAILMAKER_CONFIG", "SAILMAKER_SERVER", "SAILMAKER_STATE_DIR"} {
		t.Setenv(k, "")
	}
	state := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(state, "recipes"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(state, "recipes", "istio@1.25.0.yaml"), []byte("kind: Recipe\n"), 0o644))

	// -o values, per command.
	for path, allowed := range outputCommands {
		got, directive := complete(t, state, append(strings.Fields(path), "-o", "")...)
		assert.Equal(t, formatNames(allowed), got, path)
		assert.Equal(t, ":4", directive, "no file completion")
	}
	got, _ := complete(t, state, "audit", "ledger", "-o", "y")
	assert.Equal(t, []string{"yaml"}, got)
	got, _ = complete(t, state, "--log-level", "")
	assert.Equal(t, logLevels, got)

	// Recipe ids: embedded and stored; base images where a command takes them.
	got, _ = complete(t, state, "build", "")
	assert.Equal(t, []string{"istio@1.24.2", "istio@1.25.0"}, got)
	got, _ = complete(t, state, "build", "istio@1.25")
	assert.Equal(t, []string{"istio@1.25.0"}, got)
	got, _ = complete(t, state, "recipes", "show", "")
	assert.Equal(t, []string{"istio@1.24.2", "base/bookworm", "base/distroless", "base/iptables", "builder/go1.23.4", "istio@1.25.0"}, got)
	got, _ = complete(t, state, "recipes", "show", "istio@1.24.2", "")
	assert.Empty(t, got, "one recipe only")
	got, _ = complete(t, state, "base", "build", "base/bookworm", "")
	assert.Equal(t, []string{"base/distroless", "base/iptables", "builder/go1.23.4"}, got)

	// Build ids: none, quietly, without a service.
	got, directive := complete(t, state, "builds", "show", "")
	assert.Empty(t, got)
	assert.Equal(t, ":4", directive)
}
