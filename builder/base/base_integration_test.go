package base_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
)

// Building every base again, with the same SOURCE_DATE_EPOCH and package
// versions, gives the same digest: for a multi-platform base the index
// digest, which covers each platform's image. (Bases builds or reuses one
// copy; this builds another from scratch, two bases at a time.)
func TestBaseImagesAreReproducible(t *testing.T) {
	testenv.Integration(t)
	e := testenv.Registry(t)
	first := e.Bases(t)
	ctx := context.Background()
	specs := e.BaseSpecs(t)
	results := make([]*base.Result, len(specs))
	eg := errgroup.Group{}
	eg.SetLimit(2)
	for i, s := range specs {
		eg.Go(func() error {
			start := time.Now()
			res, err := base.Build(ctx, s, e.BaseOptions(t))
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			t.Logf("%s rebuilt in %s", s.Name, time.Since(start).Round(time.Second))
			results[i] = res
			return nil
		})
	}
	err := eg.Wait()
	for _, r := range results {
		if r != nil {
			defer r.Close()
		}
	}
	require.NoError(t, err)
	for i, s := range specs {
		res := results[i]
		t.Run(s.Name, func(t *testing.T) {
			d, err := res.Digest()
			require.NoError(t, err)
			assert.Equal(t, first[s.Name].Digest, d, "second build of %s", s.Name)

			platforms := s.PlatformList()
			require.Len(t, res.Platforms, len(platforms))
			if len(platforms) > 1 {
				require.NotNil(t, res.Index, "a multi-platform base is an image index")
				m, err := res.Index.IndexManifest()
				require.NoError(t, err)
				require.Len(t, m.Manifests, len(platforms))
				for j, desc := range m.Manifests {
					want, err := base.ParsePlatform(platforms[j])
					require.NoError(t, err)
					require.NotNil(t, desc.Platform)
					assert.Equal(t, want, *desc.Platform)
					pd, err := res.Platforms[j].Image.Digest()
					require.NoError(t, err)
					assert.Equal(t, pd, desc.Digest, "the index names each platform's image")
				}
			} else {
				assert.Nil(t, res.Index, "a single-platform base stays a plain image")
			}
			for _, pr := range res.Platforms {
				cf, err := pr.Image.ConfigFile()
				require.NoError(t, err)
				assert.Equal(t, pr.Platform.Architecture, cf.Architecture)
				assert.Equal(t, "linux", cf.OS)
				assert.Equal(t, s.Version, cf.Config.Labels["org.opencontainers.image.version"])
				assert.Equal(t, time.Unix(s.SourceDateEpoch, 0).UTC().Format(time.RFC3339), cf.Config.Labels["org.opencontainers.image.created"])
				assert.NotEmpty(t, cf.Config.Labels["org.opencontainers.image.source"])
				assert.Equal(t, strings.Join(pr.Packages, ","), cf.Config.Labels[base.LabelPackages])
				for _, p := range s.Packages {
					// Every package of the recipe has files in the image
					// (a distroless recipe lists only such packages).
					assert.Regexp(t, `(^|,)`+regexp.QuoteMeta(p)+`=`, cf.Config.Labels[base.LabelPackages], "package list names %s", p)
				}
				if s.GoVersion != "" {
					assert.Equal(t, s.GoVersion, cf.Config.Labels[base.LabelGoVersion])
					assert.Contains(t, cf.Config.Env, "GOTOOLCHAIN=local")
					assert.Regexp(t, `^h1:`, cf.Config.Labels[base.LabelGoSum])
				}
			}
		})
	}
}

// A tiny LLB build runs commands in base/bookworm and in the distroless
// iptables base with network disabled, and BuildKit pushes the result to
// the registry.
func TestLLBBuildInBaseWithoutNetwork(t *testing.T) {
	e := testenv.Start(t)
	bases := e.Bases(t)
	ctx := context.Background()
	bookworm := bases["base/bookworm"]
	goImg := bases["builder/go1.23.4"]

	script := `id istio-proxy > /result/id
ip -o link show | awk -F': ' '{print $2}' > /result/links
sudo -l -U istio-proxy > /result/sudo
iptables --version > /result/iptables
ip6tables --version > /result/ip6tables
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
	err = builder.Solve(ctx, bk, llb.Scratch().File(llb.Copy(goResult, "/", "/")), client.SolveOpt{
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
	assert.Contains(t, files["sudo"], "NOPASSWD: ALL", "upstream's sudoers rule")
	assert.Contains(t, files["iptables"], "(legacy)", "iptables is iptables-legacy, as upstream sets it")
	assert.Contains(t, files["ip6tables"], "(legacy)")
	assert.Equal(t, "ok\n", files["certs"])
	assert.Contains(t, files["go"], "go1.23.4 linux/amd64")
	assert.Contains(t, files["git"], "git version")
	assert.Contains(t, files["make"], "GNU Make")

	// The distroless iptables base has no shell: its programs run as the
	// build step itself, and their output comes back in the step's log.
	ipt := imageState(t, e, bases["base/iptables"])
	var steps []llb.State
	for _, c := range [][]string{
		{"/usr/sbin/iptables-legacy", "--version"},
		{"/usr/sbin/ip6tables-nft", "--version"},
		{"/usr/sbin/iptables-restore", "--version"},
		{"/usr/sbin/iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001", "--help"},
	} {
		steps = append(steps, ipt.Run(llb.Args(c), llb.Network(llb.NetModeNone), llb.IgnoreCache).Root())
	}
	var log bytes.Buffer
	err = builder.Solve(ctx, bk, llb.Merge(steps), client.SolveOpt{}, builder.Progress{Log: &log})
	require.NoError(t, err, log.String())
	assert.Contains(t, log.String(), "iptables v1.8.9 (legacy)")
	assert.Contains(t, log.String(), "ip6tables v1.8.9 (nf_tables)")
	assert.Regexp(t, `iptables-restore v1\.8\.9 \(legacy\)`, log.String(), "the plain names are the legacy backend")
	assert.Contains(t, log.String(), "REDIRECT target options", "the xtables extensions (libxt_REDIRECT.so) load")
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

	// A multi-platform base is an OCI image index, one manifest per platform.
	out, err = exec.Command("skopeo", "inspect", "--tls-verify=false", "--raw", src).CombinedOutput()
	require.NoError(t, err, string(out))
	var index v1.IndexManifest
	require.NoError(t, json.Unmarshal(out, &index))
	assert.Equal(t, types.OCIImageIndex, index.MediaType)
	var plats []string
	for _, m := range index.Manifests {
		require.NotNil(t, m.Platform)
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, plats)

	addr := startDistribution(t)
	dst := fmt.Sprintf("docker://%s/mirror/bookworm:1", addr)
	out, err = exec.Command("skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests", src, dst).CombinedOutput()
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
