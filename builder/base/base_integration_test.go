package base_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
)

// Building a base image again, with the same SOURCE_DATE_EPOCH and package
// versions, gives the same digest. (Bases builds or reuses one copy; this
// builds another from scratch.)
func TestBaseImagesAreReproducible(t *testing.T) {
	testenv.Integration(t)
	e := testenv.Registry(t)
	first := e.Bases(t)
	for _, s := range e.BaseSpecs(t) {
		t.Run(s.Name, func(t *testing.T) {
			res, err := base.Build(context.Background(), s, e.BaseOptions(t))
			require.NoError(t, err)
			defer res.Close()
			d, err := res.Image.Digest()
			require.NoError(t, err)
			assert.Equal(t, first[s.Name].Digest, d, "second build of %s", s.Name)

			cf, err := res.Image.ConfigFile()
			require.NoError(t, err)
			assert.Equal(t, "amd64", cf.Architecture)
			assert.Equal(t, "linux", cf.OS)
			assert.Equal(t, s.Version, cf.Config.Labels["org.opencontainers.image.version"])
			assert.Equal(t, time.Unix(s.SourceDateEpoch, 0).UTC().Format(time.RFC3339), cf.Config.Labels["org.opencontainers.image.created"])
			assert.NotEmpty(t, cf.Config.Labels["org.opencontainers.image.source"])
			for _, p := range s.Packages {
				assert.Regexp(t, `(^|,)`+p+`=`, cf.Config.Labels[base.LabelPackages], "package list names %s", p)
			}
			if s.GoVersion != "" {
				assert.Equal(t, s.GoVersion, cf.Config.Labels[base.LabelGoVersion])
				assert.Contains(t, cf.Config.Env, "GOTOOLCHAIN=local")
				assert.Regexp(t, `^h1:`, cf.Config.Labels[base.LabelGoSum])
			}
		})
	}
}

// A tiny LLB build runs a command in base/bookworm with network disabled,
// and BuildKit pushes its result to the registry.
func TestLLBBuildInBaseWithoutNetwork(t *testing.T) {
	e := testenv.Start(t)
	bases := e.Bases(t)
	ctx := context.Background()
	bookworm := bases["base/bookworm"]
	goImg := bases["builder/go1.23.4"]

	script := `id istio-proxy > /result/id
ip -o link show | awk -F': ' '{print $2}' > /result/links
sudo -l -U istio-proxy > /result/sudo
test -f /etc/ssl/certs/ca-certificates.crt && echo ok > /result/certs`
	run := imageState(t, e, bookworm).
		Run(llb.Args([]string{"/bin/sh", "-euc", script}), llb.Network(llb.NetModeNone))
	result := run.AddMount("/result", llb.Scratch())
	goRun := imageState(t, e, goImg).
		Run(llb.Args([]string{"/bin/sh", "-euc", "go version > /result/go; git --version > /result/git; make --version | head -1 > /result/make"}), llb.Network(llb.NetModeNone))
	goResult := goRun.AddMount("/result", result)

	out := e.Config.Registry.Address + "/test/llb-result:1"
	bk, err := builder.Connect(ctx, e.Config)
	require.NoError(t, err)
	defer bk.Close()
	_, err = builder.Solve(ctx, bk, llb.Scratch().File(llb.Copy(goResult, "/", "/")), client.SolveOpt{
		Exports: []client.ExportEntry{{Type: client.ExporterImage, Attrs: map[string]string{"name": out, "push": "true"}}},
	}, builder.Progress{})
	require.NoError(t, err)

	ref, err := e.Registry.ParseRef(out)
	require.NoError(t, err)
	img, err := e.Registry.Image(ctx, ref)
	require.NoError(t, err)
	files := readAll(t, img)
	assert.Contains(t, files["id"], "uid=1337(istio-proxy)")
	assert.Equal(t, "lo", strings.TrimSpace(files["links"]), "only loopback: the build had no network")
	assert.Contains(t, files["sudo"], "iptables")
	assert.Equal(t, "ok\n", files["certs"])
	assert.Contains(t, files["go"], "go1.23.4 linux/amd64")
	assert.Contains(t, files["git"], "git version")
	assert.Contains(t, files["make"], "GNU Make")
}

// imageState is the pushed image by digest, with its config applied.
func imageState(t *testing.T, e *testenv.Env, p registry.Pushed) llb.State {
	ref := p.Tag.Context().Digest(p.Digest.String())
	img, err := e.Registry.Image(context.Background(), ref)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	return builder.ImageState(ref.String(), cf)
}

func readAll(t *testing.T, img v1.Image) map[string]string {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			out[strings.TrimPrefix(h.Name, "/")] = string(b)
		}
	}
}

// Independent clients read the base images: skopeo from our registry, and a
// copy into Debian's distribution registry (a separate server) keeps the
// digest.
func TestIndependentClientsReadBaseImages(t *testing.T) {
	testenv.Integration(t)
	for _, tool := range []string{"skopeo", "docker-registry"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is installed by `make test` (Debian package)", tool)
	}
	e := testenv.Registry(t)
	bases := e.Bases(t)
	src := "docker://" + bases["base/bookworm"].Tag.String()

	out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", src).CombinedOutput()
	require.NoError(t, err, string(out))
	var info struct {
		Digest string
		Labels map[string]string
		Os     string
	}
	require.NoError(t, json.Unmarshal(out, &info))
	assert.Equal(t, bases["base/bookworm"].Digest.String(), info.Digest)
	assert.Equal(t, "linux", info.Os)
	assert.Contains(t, info.Labels[base.LabelPackages], "iptables=")

	addr := startDistribution(t)
	dst := fmt.Sprintf("docker://%s/mirror/bookworm:1", addr)
	out, err = exec.Command("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests", src, dst).CombinedOutput()
	require.NoError(t, err, string(out))
	ref, err := e.Registry.ParseRef(addr + "/mirror/bookworm:1")
	if err != nil {
		// addr is loopback, but not in the allow-list: read it directly.
		e.Config.Registry.Allow = append(e.Config.Registry.Allow, addr)
		ref, err = e.Registry.ParseRef(addr + "/mirror/bookworm:1")
	}
	require.NoError(t, err)
	d, ok, err := e.Registry.Resolve(context.Background(), ref)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, bases["base/bookworm"].Digest, d)
}

// startDistribution runs Debian's docker-registry on a free loopback port.
func startDistribution(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: %s}
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)), 0o644))
	cmd := exec.Command("docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not start on %s", addr)
	return ""
}
