package builder

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestExplainFailureNamesTheCause(t *testing.T) {
	for _, c := range []struct {
		name, log string
		err       error
		want      string
		not       string
	}{
		{"network", "go: dial tcp: lookup proxy.golang.org: no such host\n", errors.New("process did not complete successfully: exit code: 2"),
			"the build tried to reach the network", ""},
		{"plain failure", "undefined: foo\n", errors.New("process did not complete successfully: exit code: 1"),
			"the build failed (it ran with no network", ""},
		{"disk full, as text from buildkitd", "", errors.New("failed to solve: write /var/lib/buildkit/x: no space left on device"),
			"a disk is full", "no network"},
		{"disk full, as errno", "", fmt.Errorf("exporting: %w", syscall.ENOSPC),
			"a disk is full", "no network"},
		{"buildkitd gone", "dial tcp 127.0.0.1:1234: connection refused\n", status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing\""),
			"the connection to buildkitd was lost", "no network"},
		{"buildkitd gone, wrapped", "", fmt.Errorf("solving: %w", status.Error(codes.Unavailable, "error reading from server: EOF")),
			"the connection to buildkitd was lost", "no network"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := explainFailure(c.err, c.log)
			assert.Contains(t, got.Error(), c.want)
			if c.not != "" {
				assert.NotContains(t, got.Error(), c.not)
			}
			assert.ErrorIs(t, got, c.err, "the cause stays wrapped")
		})
	}
}
