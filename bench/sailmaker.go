package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// runSailmaker runs `sailmaker <globals> build -f recipe -o json --timings
// --progress rawjson` and reads what it printed; its stderr (logs, BuildKit's
// progress) goes to logFile. Wall time is from start to exit of the
// process; PeakRSS is the process's own high-water mark (VmHWM, sampled
// while it runs; its children, git and go, are not counted).
func runSailmaker(ctx context.Context, o *Options, globals []string, recipeFile, logFile string, env []string) (*cliRun, error) {
	args := append(append([]string{}, globals...), "build", "-f", recipeFile, "-o", "json", "--timings", "--progress", "rawjson")
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
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Sailmaker, err)
	}
	hwm := make(chan int64, 1)
	stop := make(chan struct{})
	go func() { hwm <- sampleHWM(cmd.Process.Pid, stop) }()
	runErr := cmd.Wait()
	run := &cliRun{Wall: time.Since(start)}
	close(stop)
	run.PeakRSS = <-hwm
	if run.PeakRSS == 0 && cmd.ProcessState != nil {
		// Too short to sample: getrusage's maximum (the process or its
		// largest child).
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

// sampleHWM reads the process's VmHWM (its peak resident set, which only
// grows) every 10 ms until stop is closed or the process is gone, and
// returns the last value read, in bytes.
func sampleHWM(pid int, stop <-chan struct{}) int64 {
	file := fmt.Sprintf("/proc/%d/status", pid)
	var peak int64
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if v, ok := readHWM(file); ok {
			peak = max(peak, v)
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

func readHWM(file string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
