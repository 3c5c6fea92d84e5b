package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/sailmaker/sailmaker/api"
)

// cliRun is one sailmaker process.
type cliRun struct {
	Result  api.Result
	Wall    time.Duration
	PeakRSS int64 // bytes
}

// runSailmaker runs `sailmaker <global> build -f recipe -o json --timings`
// and reads what it printed; its stderr (logs, build progress) goes to
// logFile. Wall time is from start to exit of the process.
func runSailmaker(ctx context.Context, o *Options, recipeFile, logFile string, env []string) (*cliRun, error) {
	args := append(append([]string{}, o.SailmakerArgs...), "build", "-f", recipeFile, "-o", "json", "--timings", "--progress", "plain")
	if o.EnvoyFile != "" {
		args = append(args, "--envoy-file", o.EnvoyFile)
	}
	if o.EnvoySHA256 != "" {
		args = append(args, "--envoy-sha256", o.EnvoySHA256)
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.CommandContext(ctx, o.Sailmaker, args...)
	cmd.Env = append(append(os.Environ(), o.Env...), env...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, lf
	start := time.Now()
	runErr := cmd.Run()
	run := &cliRun{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			run.PeakRSS = ru.Maxrss << 10 // kilobytes on Linux
		}
	}
	if runErr != nil {
		return run, fmt.Errorf("%s %v: %w\n%s\n(the whole output is in %s)", o.Sailmaker, args, runErr, tailFile(logFile, 2000), logFile)
	}
	if err := json.Unmarshal(stdout.Bytes(), &run.Result); err != nil {
		return run, fmt.Errorf("reading the output of sailmaker build -o json --timings (%q): %w", tailString(stdout.String(), 300), err)
	}
	return run, nil
}
