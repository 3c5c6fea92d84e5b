package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

func init() { subcommands = append(subcommands, newBuildCmd) }

type buildOptions struct {
	file              string
	envoyFile         string
	envoySHA256       string
	envoyFiles        []string // --envoy-file [ARCH=]FILE
	envoySHA256s      []string // --envoy-sha256 [ARCH=]SUM
	platformFlags     []string
	platforms         []string
	envoyByArch       map[string]builder.EnvoyOverride
	force             bool
	checkReproducible bool
	format            *outputFlag
	outputs           []string
	metadataFile      string
	quiet             bool
	progress          string
	timings           bool
	server            string
}

// check refuses bad flags before any work starts.
func (o *buildOptions) check() ([]publish.Output, error) {
	if err := checkProgress(o.progress); err != nil {
		return nil, err
	}
	outs, err := publish.ParseOutputs(o.outputs)
	if err != nil {
		return nil, err
	}
	if o.platforms, err = builder.ParsePlatforms(o.platformFlags); err != nil {
		return nil, err
	}
	if err := o.parseEnvoy(); err != nil {
		return nil, err
	}
	if o.metadataFile != "" {
		if fi, err := os.Stat(filepath.Dir(o.metadataFile)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--metadata-file %s: its directory does not exist", o.metadataFile)
		}
	}
	return outs, nil
}

func checkProgress(p string) error {
	switch p {
	case "auto", "plain", "tty", "quiet", "rawjson":
		return nil
	}
	return fmt.Errorf("--progress %q: must be auto, plain, tty, quiet or rawjson", p)
}

func newBuildCmd(g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [RECIPE]",
		Short: "Build a recipe's images from upstream source and publish them",
		Long: `Build the images of one recipe: fetch and verify the source at the pinned
commit, the Go modules against go.sum and Envoy by sha256; run upstream's make
targets in BuildKit with no network; assemble the images on the internal base
images, with a provenance and an SBOM for each; then publish them to every
--output:

  registry          the internal registry (the default): content by digest,
                    attachments, signatures, then the tags, recorded in the
                    ledger. Tags are immutable: a tag that names another
                    digest is refused unless --force. When the registry
                    already has the images from the same inputs, nothing is
                    built.
  oci-layout=DIR    an OCI image layout directory (skopeo ... oci:DIR:REPO:TAG)
  tar=FILE          a docker-archive tarball (docker load, kind load, skopeo)
  apt=DIR           a signed apt repository (the recipe's Debian packages;
                    signed with signing.aptKey, $SAILMAKER_APT_KEY)

A recipe's packages (spec.packages) are built in the same solve and
published as OCI artifacts next to the images (a docker archive leaves them
out). After the registry push, the multi-version istioctl package is made
from every release's istioctl the registry holds (packages.istioctlRetention
says which it keeps) and published too.

With a signing key (signing.key, $SAILMAKER_SIGNING_KEY) each image gets a
cosign signature and its provenance and SBOM are signed DSSE attestations
(cosign verify-attestation --key sailmaker.pub --type slsaprovenance1).`,
		Example: `  sailmaker build istio@1.24.2
  sailmaker build -f my-recipe.yaml -o json
  sailmaker build istio@1.24.2 --envoy-file envoy.tar.gz --envoy-sha256 <sum>
  sailmaker build istio@1.24.2 --output oci-layout=./out --output tar=images.tar
  sailmaker build istio@1.24.2 --output registry --output apt=/srv/apt
  sailmaker build istio@1.24.2 -q --metadata-file build.json   # repo@sha256:... lines on stdout
  sailmaker build istio@1.24.2 --check-reproducible --timings
  sailmaker build istio@1.24.2 --server http://127.0.0.1:8080   # queue it on a build service`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 0) == (o.file == "") {
				return errors.New("name one recipe: an embedded one (see `sailmaker recipes list`) or -f FILE")
			}
			outs, err := o.check()
			if err != nil {
				return err
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if serverURL(o.server, cfg) != "" {
				c, err := serviceClient(o.server, cfg)
				if err != nil {
					return err
				}
				return runRemoteBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), c, args, o)
			}
			r, err := loadRecipe(cfg, args, o.file)
			if err != nil {
				return err
			}
			return runBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, r, outs, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "recipe file (YAML or JSON) instead of an embedded recipe")
	f.StringArrayVar(&o.envoyFiles, "envoy-file", nil, "use this local Envoy tarball instead of downloading it (its sha256 is still checked); ARCH=FILE for another architecture's (arm64=...)")
	f.StringArrayVar(&o.envoySHA256s, "envoy-sha256", nil, "expect this sha256 for the Envoy tarball instead of the recipe's pin (recorded on the images); ARCH=SUM for another architecture's (arm64=...)")
	f.StringArrayVar(&o.platformFlags, "platform", nil, "build only these of the recipe's platforms, os/arch (repeatable, or a comma list); a multi-platform recipe still gives image indexes")
	f.BoolVar(&o.force, "force", false, "rebuild even if up to date, and move tags that point to other digests (recorded)")
	f.BoolVar(&o.checkReproducible, "check-reproducible", false, "build twice, the second time without cache (a throw-away Go build cache, removed from buildkitd afterwards; --timings shows that build as check), and fail unless the digests are equal")
	f.StringArrayVar(&o.outputs, "output", []string{publish.OutputRegistry}, "where the images and packages go: registry, oci-layout=DIR, tar=FILE or apt=DIR (repeatable)")
	f.StringVar(&o.metadataFile, "metadata-file", "", "write the images' references, digests, platforms and attachment digests to this JSON file")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only repository@digest lines on stdout")
	f.StringVar(&o.progress, "progress", "auto", "build progress: auto, plain, tty, quiet or rawjson")
	f.BoolVar(&o.timings, "timings", false, "print how long each phase took")
	f.StringVar(&o.server, "server", "", "queue the build on this build service and follow it (default $SAILMAKER_SERVER or server.url; none: build here)")
	o.format = addFormatFlag(cmd)
	return cmd
}

func loadRecipe(cfg *config.Config, args []string, file string) (*recipes.Recipe, error) {
	opts := []recipes.Option{recipes.WithRegistry(cfg.Registry.Address), recipes.WithAllowedRegistries(cfg.AllowedRegistries())}
	if file != "" {
		return recipes.Load(file, opts...)
	}
	return recipes.Get(args[0], opts...)
}

func runBuild(ctx context.Context, stdout, stderr io.Writer, cfg *config.Config, r *recipes.Recipe, outs []publish.Output, o *buildOptions) error {
	req := builder.Request{
		Trigger:           localTrigger(),
		EnvoyFile:         o.envoyFile,
		EnvoySHA256:       o.envoySHA256,
		EnvoyByArch:       o.envoyByArch,
		Platforms:         o.platforms,
		NoCache:           o.force,
		CheckReproducible: o.checkReproducible,
	}
	// What does not fit the recipe is refused before any work.
	if err := builder.CheckRequest(r, req); err != nil {
		return err
	}
	n := len(r.Spec.PlatformList())
	if len(o.platforms) > 0 {
		n = len(o.platforms)
	}
	if err := publish.CheckOutputs(outs, r.Spec.MultiPlatform(), n); err != nil {
		return err
	}
	for _, w := range r.Warnings() {
		logrus.Warn(w)
	}
	key, err := loadSigningKey(cfg)
	if err != nil {
		return err
	}
	aptSigner, err := loadAptSigner(cfg, outs)
	if err != nil {
		return err
	}
	rc, err := registry.NewClient(cfg)
	if err != nil {
		return err
	}
	if err := registry.Ping(ctx, cfg.Registry.Address, cfg.RegistryInsecure(cfg.Registry.Address)); err != nil {
		return err
	}
	settings := publish.Settings{Outputs: outs, Registry: rc, Force: o.force, Key: key, Log: logrus.StandardLogger(),
		AptSigner: aptSigner, IstioctlRetention: cfg.Packages.Retention()}
	if hasRegistryOutput(outs) {
		st, err := store.OpenDir(ctx, cfg.StateDir)
		if err != nil {
			return err
		}
		defer st.Close()
		settings.Ledger = st
	}
	pub, cache, err := publish.New(settings)
	if err != nil {
		return err
	}
	b, err := builder.New(cfg, rc,
		builder.WithProgress(builder.Progress{Out: stderr, Mode: progressMode(o.progress, stderr)}),
		builder.WithLogger(logrus.StandardLogger()),
		builder.WithCache(cache))
	if err != nil {
		return err
	}
	out, err := publish.BuildAndPublish(ctx, b, r, req, pub)
	if err != nil {
		if out != nil && len(out.Published) > 0 {
			_ = printImages(stderr, out.Published, "table")
		}
		return err
	}
	if out.UpToDate {
		fmt.Fprintf(stderr, "%s is up to date: the registry has its images from the same inputs; nothing built, nothing pushed\n", r.ID())
	}
	if o.timings {
		t := out.Timings
		fmt.Fprintf(stderr, "timings: fetch %s, solve %s, assemble %s, push %s%s, total %s\n", t.Fetch.Round(1e6), t.Solve.Round(1e6), t.Assemble.Round(1e6), t.Push.Round(1e6), checkTiming(t), t.Total.Round(1e6))
	}
	return printResult(stdout, out.API(), o)
}

// printResult prints a build's result as -o, -q and --metadata-file ask.
func printResult(stdout io.Writer, res api.Result, o *buildOptions) error {
	if o.metadataFile != "" {
		if err := writeMetadataFile(o.metadataFile, res); err != nil {
			return err
		}
	}
	switch {
	case o.quiet:
		seen := map[string]bool{}
		for _, im := range res.Images {
			if !seen[im.Reference] {
				seen[im.Reference] = true
				fmt.Fprintln(stdout, im.Reference)
			}
		}
		return nil
	case o.format.format == output.JSON || o.format.format == output.YAML:
		return o.format.write(stdout, res)
	default:
		return o.format.write(stdout, imageList(res.Images))
	}
}

func hasRegistryOutput(outs []publish.Output) bool {
	for _, o := range outs {
		if o.Kind == publish.OutputRegistry {
			return true
		}
	}
	return false
}

// loadAptSigner reads the apt repositories' OpenPGP key (signing.aptKey)
// when an output is an apt repository, before any work starts.
func loadAptSigner(cfg *config.Config, outs []publish.Output) (*aptrepo.Signer, error) {
	need := ""
	for _, o := range outs {
		if o.Kind == publish.OutputApt {
			need = o.String()
		}
	}
	if need == "" {
		return nil, nil
	}
	if cfg.Signing.AptKey == "" {
		return nil, fmt.Errorf("--output %s: an apt repository is signed with an OpenPGP key: set signing.aptKey ($SAILMAKER_APT_KEY); `sailmaker signing keygen --openpgp` makes one", strings.Replace(need, ":", "=", 1))
	}
	s, err := aptrepo.LoadSigner(cfg.Signing.AptKey)
	if err != nil {
		return nil, fmt.Errorf("signing.aptKey: %w", err)
	}
	return s, nil
}

// loadSigningKey reads the configured signing key, if any, before any work
// starts.
func loadSigningKey(cfg *config.Config) (*attest.Key, error) {
	if cfg.Signing.Key == "" {
		return nil, nil
	}
	k, err := attest.LoadKey(cfg.Signing.Key)
	if err != nil {
		return nil, fmt.Errorf("signing.key: %w", err)
	}
	return k, nil
}

func progressMode(p string, stderr io.Writer) progressui.DisplayMode {
	if p != "auto" {
		return progressui.DisplayMode(p)
	}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		return progressui.AutoMode
	}
	return progressui.PlainMode
}

// localTrigger is the trigger of a build run by this CLI: the local user,
// and a build id of its own for the ledger and the provenance.
func localTrigger() api.Trigger {
	return api.Trigger{Actor: localActor(), Kind: api.TriggerCLI, BuildID: "cli-" + uuid.NewString()[:8], Time: time.Now()}
}

// metadataEntry is one image in --metadata-file, with the keys `docker
// buildx build --metadata-file` users script against.
type metadataEntry struct {
	ImageName    string           `json:"image.name"`
	Digest       string           `json:"containerimage.digest"`
	Descriptor   metadataDesc     `json:"containerimage.descriptor"`
	Platforms    []string         `json:"platforms,omitempty"`
	Provenance   string           `json:"provenance,omitempty"`
	SBOM         string           `json:"sbom,omitempty"`
	Signature    string           `json:"signature,omitempty"`
	Attestations string           `json:"attestations,omitempty"`
	Outputs      []metadataOutput `json:"outputs"`
}

type metadataDesc struct {
	MediaType string `json:"mediaType,omitempty"`
	Digest    string `json:"digest"`
}

type metadataOutput struct {
	Output    string `json:"output"`
	Reference string `json:"reference"`
	Status    string `json:"status"`
}

// writeMetadataFile writes, per image name, its reference, digest,
// platforms and attachment digests (from the first output that has them).
func writeMetadataFile(path string, res api.Result) error {
	m := map[string]*metadataEntry{}
	for _, im := range res.Images {
		e := m[im.Name]
		if e == nil {
			e = &metadataEntry{ImageName: im.Repository + ":" + im.Tag, Digest: im.Digest, Platforms: im.Platforms,
				Descriptor: metadataDesc{MediaType: im.MediaType, Digest: im.Digest}}
			m[im.Name] = e
		}
		for _, f := range []struct {
			dst *string
			v   string
		}{{&e.Provenance, im.Provenance}, {&e.SBOM, im.SBOM}, {&e.Signature, im.Signature}, {&e.Attestations, im.Attestations}} {
			if *f.dst == "" {
				*f.dst = f.v
			}
		}
		e.Outputs = append(e.Outputs, metadataOutput{Output: im.Output, Reference: im.Reference, Status: im.Status})
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--metadata-file: %w", err)
	}
	if err := writeJSONOut(f, m); err != nil {
		f.Close()
		return fmt.Errorf("--metadata-file %s: %w", path, err)
	}
	return f.Close()
}

// localActor names the user running the CLI, for the ledger and provenance.
func localActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
