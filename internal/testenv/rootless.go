package testenv

import (
	"os/exec"
	"os/user"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/buildkitd"
)

// RootlessUser is the unprivileged user rootless buildkitd runs as in
// tests.
const RootlessUser = "sailmaker-rootless"

// EnsureRootlessUser makes RootlessUser (a login-less user with a home and
// subordinate uid and gid ranges) unless it exists, and checks what
// BuildKit's rootless mode needs (rootlesskit and uidmap from `make deps`).
func EnsureRootlessUser(t testing.TB) string {
	t.Helper()
	if _, err := user.Lookup(RootlessUser); err != nil {
		out, err := exec.Command("useradd", "--create-home", "--shell", "/usr/sbin/nologin",
			"--comment", "sailmaker tests, rootless buildkitd", RootlessUser).CombinedOutput()
		require.NoError(t, err, "useradd %s: %s", RootlessUser, out)
	}
	if err := buildkitd.PreflightRootless(RootlessUser); err != nil {
		// useradd gives subordinate ids when /etc/login.defs says so; make
		// sure of them.
		out, uerr := exec.Command("usermod", "--add-subuids", "200000-265535", "--add-subgids", "200000-265535", RootlessUser).CombinedOutput()
		require.NoError(t, uerr, "usermod: %s", out)
		require.NoError(t, buildkitd.PreflightRootless(RootlessUser), "rootless buildkitd needs rootlesskit and uidmap (make deps installs them)")
	}
	return RootlessUser
}
