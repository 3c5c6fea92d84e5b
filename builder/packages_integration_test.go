package builder_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/packaging/deb/debtest"
)

// artifactFile reads the one file of a package or binary artifact from the
// registry and writes it to dir/name.
func artifactFile(t *testing.T, e *testenv.Env, im api.Image, artifactType, dir, name string) string {
	t.Helper()
	img := imageAt(t, e, im.Reference)
	m, err := img.Manifest()
	require.NoError(t, err)
	assert.Equal(t, artifactType, m.ArtifactType, im.Name)
	assert.Equal(t, "application/vnd.oci.empty.v1+json", string(m.Config.MediaType), "an artifact has the empty config")
	require.Len(t, m.Layers, 1)
	assert.Equal(t, artifactType, string(m.Layers[0].MediaType))
	data, err := builder.ArtifactContent(img, artifactType)
	require.NoError(t, err)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o755))
	return p
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	require.NoError(t, err, "dpkg-deb %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// checkFixturePackages checks what the fixture recipe's packages became:
// istio-cni's .deb, the release's istioctl, and istioctl-versions, read
// back from the registry with Debian's own tools.
func checkFixturePackages(t *testing.T, e *testenv.Env, repo *fixture.Repo, pkgs []api.Image) {
	t.Helper()
	require.Len(t, pkgs, 3)
	cni, ctl, versions := pkgs[0], pkgs[1], pkgs[2]
	reg := e.Config.Registry.Address
	dir := t.TempDir()

	assert.Equal(t, api.KindPackage, cni.Kind)
	assert.Equal(t, reg+"/fixture/istio-cni", cni.Repository)
	assert.Equal(t, "1.0.0-1", cni.Tag)
	require.NotNil(t, cni.Package)
	assert.Equal(t, api.Package{Name: "istio-cni", Version: "1.0.0-1", Architecture: "amd64", File: "istio-cni_1.0.0-1_amd64.deb"}, *cni.Package)
	assert.NotEmpty(t, cni.Provenance)
	assert.NotEmpty(t, cni.SBOM)
	cniDeb := artifactFile(t, e, cni, builder.ArtifactTypeDeb, dir, "istio-cni_1.0.0-1_amd64.deb")
	info := dpkgDeb(t, "--info", cniDeb)
	for _, want := range []string{" Package: istio-cni\n", " Version: 1.0.0-1\n", " Architecture: amd64\n",
		" Maintainer: sailmaker <packages@sailmaker.dev>\n", " Depends: iptables\n", " Section: net\n", " Priority: optional\n",
		" Description: Istio CNI plugin for Kubernetes nodes\n"} {
		assert.Contains(t, info, want)
	}
	contents := dpkgDeb(t, "--contents", cniDeb)
	assert.Regexp(t, `-rwxr-xr-x root/root\s+\d+ 2024-12-14 03:28 \./opt/cni/bin/istio-cni\n`, contents, "the plugin, root's, at the commit time")
	assert.Contains(t, contents, "./usr/share/doc/istio-cni/README.Debian")
	// The plugin is the fixture's, built at this release.
	x := filepath.Join(dir, "x")
	require.NoError(t, exec.Command("dpkg-deb", "-x", cniDeb, x).Run())
	out, err := exec.Command(filepath.Join(x, "opt/cni/bin/istio-cni")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "istio-cni 1.0.0 (revision "+repo.Commit+")")

	assert.Equal(t, api.KindBinary, ctl.Kind)
	assert.Equal(t, reg+"/fixture/istioctl", ctl.Repository)
	assert.Equal(t, "1.0.0", ctl.Tag)
	assert.NotEmpty(t, ctl.Provenance)
	bin := artifactFile(t, e, ctl, builder.ArtifactTypeBinary, dir, "istioctl")
	out, err = exec.Command(bin, "version", "--remote=false").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "client version: 1.0.0\n", string(out))

	assert.Equal(t, api.KindPackage, versions.Kind)
	assert.Equal(t, reg+"/fixture/istioctl-versions", versions.Repository)
	require.NotNil(t, versions.Package)
	assert.Equal(t, "1.0.0+1.1000000", versions.Package.Version)
	assert.Equal(t, "1.0.0_1.1000000", versions.Tag)
	assert.Equal(t, []string{"1.0.0"}, versions.Package.Holds)
	assert.NotEmpty(t, versions.Provenance)
	assert.NotEmpty(t, versions.SBOM)
	vDeb := artifactFile(t, e, versions, builder.ArtifactTypeDeb, dir, "istioctl-versions_1.0.0+1.1000000_amd64.deb")
	info = dpkgDeb(t, "--info", vDeb)
	assert.Contains(t, info, " Package: istioctl-versions\n")
	assert.Contains(t, info, " /usr/bin/istioctl-100: Istio 1.0.0\n")
	contents = dpkgDeb(t, "--contents", vDeb)
	assert.Regexp(t, `-rwxr-xr-x root/root\s+\d+ 2024-12-14 03:28 \./usr/bin/istioctl-100\n`, contents)

	// lintian: no errors (the accepted warnings are README's).
	tags := debtest.Lintian(t, cniDeb, vDeb)
	assert.Empty(t, tags.Errors, tags.Output)
	for _, w := range tags.Warnings {
		assert.Contains(t, []string{"no-manual-page", "initial-upload-closes-no-bugs"}, w, tags.Output)
	}
	_ = context.Background
}

// checkPackageAttestations checks the provenance and SBOM of a package or
// binary: the build's provenance with the package instead of a base; an
// SBOM with the Go modules of its programs (the fixture's one dependency)
// and the package's Depends.
func checkPackageAttestations(t *testing.T, im api.Image, repo *fixture.Repo, prov, sbom map[string]any) {
	t.Helper()
	ext := "predicate.buildDefinition.externalParameters."
	assert.Equal(t, im.Package.Name, field(t, prov, ext+"package.name"), im.Name)
	assert.Equal(t, im.Package.Version, field(t, prov, ext+"package.version"), im.Name)
	assert.Equal(t, im.Digest[len("sha256:"):], field(t, field(t, prov, "subject").([]any)[0], "digest.sha256"))
	assert.Equal(t, repo.Commit, field(t, prov, ext+"source.commit"))
	assert.Equal(t, "", field(t, prov, ext+"base.digest"), "a package has no base")
	var deps []string
	for _, d := range field(t, prov, "predicate.buildDefinition.resolvedDependencies").([]any) {
		deps = append(deps, field(t, d, "name").(string))
	}
	assert.NotContains(t, deps, "base")
	mods := map[string]string{}
	for _, p := range field(t, sbom, "packages").([]any) {
		mods[field(t, p, "name").(string)], _ = p.(map[string]any)["versionInfo"].(string)
	}
	switch im.Name {
	case "istio-cni":
		assert.Equal(t, "v1.6.0", mods["github.com/google/uuid"], "istio-cni links the fixture's uuid module")
		assert.Contains(t, mods, "iptables", "the package's Depends")
	case "istioctl":
		assert.Equal(t, "v1.6.0", mods["github.com/google/uuid"])
		assert.Equal(t, "1.0.0", mods["istio.io/istio"], "the main module at the release")
	case "istioctl-versions":
		assert.Equal(t, "v1.6.0", mods["github.com/google/uuid"])
		assert.Equal(t, []any{"1.0.0"}, field(t, prov, ext+"package.holds"))
		assert.Contains(t, deps, "istioctl 1.0.0", "the istioctl it holds, by digest")
	default:
		t.Errorf("unexpected package %s", im.Name)
	}
}
