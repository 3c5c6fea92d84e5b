package buildkitd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PreflightRootless checks what BuildKit's rootless mode needs: rootlesskit,
// newuidmap/newgidmap (Debian's uidmap), runc, and, when this process is
// root, an unprivileged user with subordinate id ranges to run as.
func PreflightRootless(userName string) error {
	for _, bin := range []struct{ name, pkg string }{{"rootlesskit", "rootlesskit"}, {"newuidmap", "uidmap"}, {"newgidmap", "uidmap"}, {"runc", "runc"}} {
		if _, err := exec.LookPath(bin.name); err != nil {
			return fmt.Errorf("rootless buildkitd needs %s: install it with `apt-get install %s` (make deps does)", bin.name, bin.pkg)
		}
	}
	if os.Geteuid() != 0 {
		if userName != "" {
			return fmt.Errorf("rootless buildkitd as user %s: only root can start it as another user; leave the user empty to run as yourself", userName)
		}
		u, err := user.Current()
		if err != nil {
			return err
		}
		userName = u.Username
	} else if userName == "" {
		return errors.New("rootless buildkitd started by root needs the unprivileged user to run as")
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return fmt.Errorf("rootless buildkitd: %w (create it with `useradd --create-home %s`)", err, userName)
	}
	if u.Uid == "0" {
		return fmt.Errorf("rootless buildkitd: user %s is root", userName)
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if !hasSubIDs(f, u.Username, u.Uid) {
			return fmt.Errorf("rootless buildkitd: user %s has no range in %s: add one, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s`", userName, f, userName)
		}
	}
	return nil
}

func hasSubIDs(file, name, uid string) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) == 3 && (f[0] == name || f[0] == uid) {
			if n, err := strconv.Atoi(f[2]); err == nil && n >= 65536 {
				return true
			}
		}
	}
	return false
}

// rootlessCommand is rootlesskit running buildkitd in a user namespace
// (with the host's network, so loopback registries stay reachable).
func rootlessCommand(o Options, cfgPath string) (string, []string) {
	state := filepath.Join(o.Dir, "rootlesskit")
	_ = os.RemoveAll(state)
	args := []string{"--state-dir", state, "--net=host", o.Binary, "--config", cfgPath, "--oci-worker-rootless"}
	if o.NoProcessSandbox {
		args = append(args, "--oci-worker-no-process-sandbox")
	}
	return "rootlesskit", args
}

// runAsUser makes cmd run as o.User (when this process is root), with a
// home and runtime directory of its own under o.Dir, and gives that user
// o.Dir.
func runAsUser(cmd *exec.Cmd, o Options) error {
	home := filepath.Join(o.Dir, "home")
	run := filepath.Join(o.Dir, "run")
	for _, d := range []string{home, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + run, "PATH=" + os.Getenv("PATH")}
	if os.Geteuid() != 0 {
		cmd.Env = append(env, "USER="+os.Getenv("USER"))
		return nil
	}
	u, err := user.Lookup(o.User)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.WalkDir(o.Dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("giving %s to user %s: %w", o.Dir, o.User, err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	cmd.Env = append(env, "USER="+u.Username, "LOGNAME="+u.Username)
	return nil
}
