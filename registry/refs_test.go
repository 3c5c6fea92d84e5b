package registry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckRef(t *testing.T) {
	allowed := []string{"127.0.0.1:5000", "registry.internal.example"}
	for _, tc := range []struct {
		ref  string
		want string // substring of the error; empty: allowed
	}{
		{"127.0.0.1:5000/base/bookworm:1", ""},
		{"registry.internal.example/istio/pilot@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ""},
		{"golang:1.23", "not fully qualified"},
		{"library/alpine", "not fully qualified"},
		{"alpine", "not fully qualified"},
		{"docker.io/library/golang:1.23", "Docker Hub"},
		{"index.docker.io/istio/pilot:1.24.2", "Docker Hub"},
		{"registry-1.docker.io/x/y", "Docker Hub"},
		{"gcr.io/istio-release/pilot:1.24.2", "is not among"},
		{"127.0.0.1:5001/base/bookworm:1", "is not among"},
		{"", "empty"},
		{"127.0.0.1:5000/base/bookworm", "neither a tag nor a digest"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			err := CheckRef(tc.ref, allowed)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	// Docker Hub is refused even when someone allows it.
	require.ErrorContains(t, CheckRef("docker.io/library/golang:1.23", []string{"docker.io"}), "Docker Hub")
}
