package main

import (
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

func init() { subcommands = append(subcommands, newAuditCmd) }

type auditOptions struct {
	output      *outputFlag
	prefixes    []string
	key         string
	concurrency int
	noCache     bool
}

func newAuditCmd(g *globalOptions) *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read-only questions about the registry: what is there, where it came from, what is wrong",
		Long: `Audit the internal registry: every image with its provenance, SBOM and
signature (images), everything about one image (show), findings about all of
them (verify), which images contain a Go module or Debian package (uses), what
changed between two builds (diff), and the push ledger (ledger).

With no flags it reads the registry and ledger that 'make demo' and
'sailmaker build' use. Nothing is written to the registry or the ledger;
manifests and attestations are cached by digest under <state-dir>/cache/audit.
Signatures are verified with the public key given by --key or
$SAILMAKER_SIGNING_PUB (a PEM file, or the PEM text), or else with the
public half of signing.key, the key builds sign with, when it is readable.`,
		Example: `  sailmaker audit images
  sailmaker audit images -o json --repository 'istio/*' --version 1.24.2
  sailmaker audit show fixture/pilot:1.0.0
  sailmaker audit verify --key cosign.pub
  sailmaker audit uses --module golang.org/x/net@v0.33.0 -o csv
  sailmaker audit diff fixture/pilot:1.0.0 fixture/pilot:1.0.1
  sailmaker audit ledger --repository fixture/pilot`,
	}
	pf := cmd.PersistentFlags()
	o.output = addPersistentOutputFlag(cmd)
	pf.StringSliceVar(&o.prefixes, "prefix", nil, "audit only repositories equal to or under these prefixes (repeatable; default all)")
	pf.StringVar(&o.key, "key", os.Getenv("SAILMAKER_SIGNING_PUB"), "public key (PEM file) to verify signatures with; default $SAILMAKER_SIGNING_PUB, else signing.key's public half")
	pf.IntVar(&o.concurrency, "concurrency", 8, "images read at once")
	pf.BoolVar(&o.noCache, "no-disk-cache", false, "keep the digest cache in memory only")

	cmd.AddCommand(
		newAuditImagesCmd(g, o),
		newAuditShowCmd(g, o),
		newAuditVerifyCmd(g, o),
		newAuditUsesCmd(g, o),
		newAuditDiffCmd(g, o),
		newAuditLedgerCmd(g, o),
	)
	return cmd
}

// auditor checks the flags, then opens the auditor for the configured
// registry (which must answer) and ledger.
func (o *auditOptions) auditor(cmd *cobra.Command, g *globalOptions) (*audit.Auditor, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	opts := []audit.Option{
		audit.WithConcurrency(o.concurrency),
		audit.WithPrefixes(o.prefixes...),
		audit.WithLogger(logrus.StandardLogger()),
	}
	if o.noCache {
		opts = append(opts, audit.WithCacheDir(""))
	}
	v, err := signatureVerifier(cfg, o.key, func(n string) { fmt.Fprintln(cmd.ErrOrStderr(), "note:", n) })
	if err != nil {
		return nil, err
	}
	if v != nil {
		opts = append(opts, audit.WithSignatureVerifier(v))
	}
	if err := registry.Ping(cmd.Context(), cfg.Registry.Address, cfg.RegistryInsecure(cfg.Registry.Address)); err != nil {
		return nil, err
	}
	return audit.New(cfg, opts...)
}

// signatureVerifier checks signatures with the public key in key (a PEM
// file or text), or else with the public half of signing.key, the key
// builds sign with, when it is readable; nil when there is neither.
func signatureVerifier(cfg *config.Config, key string, note func(string)) (audit.SignatureVerifier, error) {
	var pub crypto.PublicKey
	switch {
	case key != "":
		p, err := audit.LoadPublicKey(key)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		pub = p
	case cfg.Signing.Key != "":
		k, err := attest.LoadKey(cfg.Signing.Key)
		if err != nil {
			note(fmt.Sprintf("signatures not verified: signing.key: %v (give the public key with --key or $SAILMAKER_SIGNING_PUB)", err))
			return nil, nil
		}
		pub = k.Public()
	default:
		return nil, nil
	}
	v, err := audit.NewKeyVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	return v, nil
}

// auditServeHandler is the read-only audit API the service mounts under
// /v1/audit/ (behind the auditor role):
// the service's store is the ledger; signatures are verified with
// $SAILMAKER_SIGNING_PUB, or signing.key's public half.
func auditServeHandler(cfg *config.Config, st *store.Store) (http.Handler, error) {
	a, err := serveAuditor(cfg, st)
	if err != nil {
		return nil, err
	}
	return audit.Handler(a), nil
}

// serveAuditor is the auditor the service's audit API and registry pages
// share.
func serveAuditor(cfg *config.Config, st *store.Store) (*audit.Auditor, error) {
	opts := []audit.Option{audit.WithLedger(st), audit.WithLogger(logrus.StandardLogger())}
	v, err := signatureVerifier(cfg, os.Getenv("SAILMAKER_SIGNING_PUB"), func(n string) { logrus.Warn("audit: " + n) })
	if err != nil {
		return nil, fmt.Errorf("audit: $SAILMAKER_SIGNING_PUB: %w", err)
	}
	if v != nil {
		opts = append(opts, audit.WithSignatureVerifier(v))
	}
	return audit.New(cfg, opts...)
}

// printAudit writes the result and, on stderr, what could not be read.
func printAudit(cmd *cobra.Command, o *auditOptions, res audit.Tabular, notes []string) error {
	if err := o.output.write(cmd.OutOrStdout(), res); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
	}
	if w := res.Partial(); w.Partial() {
		fmt.Fprint(cmd.ErrOrStderr(), "warning: ", w.String())
	}
	return nil
}

func newAuditImagesCmd(g *globalOptions, o *auditOptions) *cobra.Command {
	var f audit.Filter
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Every repository and tag, with digest, version, commit, base and attestations",
		Long: `List every tag of every repository in the registry (or under --prefix), with
its digest, kind (sailmaker: built from a recipe; base/builder: a base image;
foreign: pushed by another client), created time, version, source commit,
base image digest, and whether it has provenance, an SBOM and a signature
(valid/invalid with --key, present otherwise).`,
		Example: `  sailmaker audit images
  sailmaker audit images -o json
  sailmaker audit images --repository 'fixture/*' --commit 1a2b3c4d
  sailmaker audit images --base sha256:0123abcd -o csv > images.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := o.auditor(cmd, g)
			if err != nil {
				return err
			}
			defer a.Close()
			res, err := a.Images(cmd.Context(), f)
			if err != nil {
				return err
			}
			return printAudit(cmd, o, res, nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Repository, "repository", "", "only this repository, or a glob such as 'istio/*'")
	fl.StringVar(&f.Version, "version", "", "only images of this version")
	fl.StringVar(&f.Commit, "commit", "", "only images built from this commit (or a prefix of 7+ hex digits)")
	fl.StringVar(&f.Base, "base", "", "only images on this base: digest, digest prefix, or reference")
	return cmd
}

func newAuditShowCmd(g *globalOptions, o *auditOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show IMAGE",
		Short: "Everything known about one image: provenance, SBOM, ledger history, findings",
		Long: `Show one image (repository:tag or repository@sha256:…, in the configured
registry): its labels, layers and attachments, its provenance, its SBOM
summary (Go modules and Debian packages with versions), the ledger's history
of its tags, and what verify finds about it.`,
		Example: `  sailmaker audit show fixture/pilot:1.0.0
  sailmaker audit show fixture/proxyv2@sha256:d8190a8b… -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := o.auditor(cmd, g)
			if err != nil {
				return err
			}
			defer a.Close()
			d, err := a.Show(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printAudit(cmd, o, d, nil)
		},
	}
}

func newAuditVerifyCmd(g *globalOptions, o *auditOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check every image; exit non-zero on any finding",
		Long: `Check every image and every tag the ledger knows, and report findings with a
stable code:

  not-built-by-sailmaker  no sailmaker labels: pushed by another client
  no-provenance           an image sailmaker built without provenance
  provenance-invalid      provenance unreadable, or about another image
  provenance-mismatch     provenance and the image's labels disagree
  no-sbom, sbom-invalid   the SBOM is missing or not SPDX 2.3
  tag-moved               the tag names another digest than the ledger's last entry
  tag-unrecorded          a tag of a sailmaker image the ledger never recorded
  tag-deleted             the ledger's tag is gone from the registry
  foreign-base            the base is outside the internal registries, or not a sailmaker base
  foreign-layer           a layer neither the base's nor sailmaker's, or from a foreign URL
  commit-mismatch         the provenance's commit is not what the recipe pins
  signature-missing       (with --key) no signature
  signature-invalid       (with --key) the signature does not verify
  partial-result          the image could not be read after retries

The exit status is 1 when there is any finding.`,
		Example: `  sailmaker audit verify
  sailmaker audit verify --key /etc/sailmaker/cosign.pub -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := o.auditor(cmd, g)
			if err != nil {
				return err
			}
			defer a.Close()
			rep, err := a.Verify(cmd.Context())
			if err != nil {
				return err
			}
			if o.output.format == output.Table && len(rep.Findings) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d images in %s verified: no findings\n", rep.Checked, rep.Registry)
				for _, n := range rep.Notes {
					fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
				}
			} else if err := printAudit(cmd, o, rep, rep.Notes); err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("verify: %d findings (%s) in %d images checked", len(rep.Findings), strings.Join(rep.Codes(), ", "), rep.Checked)
			}
			return nil
		},
	}
}

func newAuditUsesCmd(g *globalOptions, o *auditOptions) *cobra.Command {
	var module, pkg string
	cmd := &cobra.Command{
		Use:   "uses --module PATH[@VERSION] | --package NAME[=VERSION]",
		Short: "Which images contain a Go module or a Debian package",
		Long: `Find the images that contain a Go module or a Debian package, from their SBOMs
(for Debian packages, also from base images' package labels). Images whose
content is unknown (no SBOM) are listed on stderr: they may contain it.`,
		Example: `  sailmaker audit uses --module github.com/google/uuid
  sailmaker audit uses --module golang.org/x/net@v0.33.0 -o json
  sailmaker audit uses --package libssl3=3.0.15-1~deb12u1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := audit.ParseUses(module, pkg)
			if err != nil {
				return err
			}
			a, err := o.auditor(cmd, g)
			if err != nil {
				return err
			}
			defer a.Close()
			res, err := a.Uses(cmd.Context(), q)
			if err != nil {
				return err
			}
			var notes []string
			if n := len(res.NotSearched); n > 0 {
				notes = append(notes, fmt.Sprintf("%d images have no SBOM and were not searched: %s", n, strings.Join(res.NotSearched, ", ")))
			}
			if len(res.Uses) == 0 && o.output.format == output.Table {
				notes = append(notes, "no image contains "+q.String())
			}
			return printAudit(cmd, o, res, notes)
		},
	}
	cmd.Flags().StringVar(&module, "module", "", "Go module path, optionally @version")
	cmd.Flags().StringVar(&pkg, "package", "", "Debian package name, optionally =version")
	return cmd
}

func newAuditDiffCmd(g *globalOptions, o *auditOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff IMAGE_A IMAGE_B",
		Short: "What changed between two builds: commit, modules, packages, base, Envoy",
		Example: `  sailmaker audit diff istio/pilot:1.24.1 istio/pilot:1.24.2
  sailmaker audit diff fixture/pilot@sha256:20f5… fixture/pilot:1.0.0 -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := o.auditor(cmd, g)
			if err != nil {
				return err
			}
			defer a.Close()
			d, err := a.Diff(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return printAudit(cmd, o, d, nil)
		},
	}
	cmd.AddCommand(newAuditDiffUpstreamCmd(g, o))
	return cmd
}

func newAuditLedgerCmd(g *globalOptions, o *auditOptions) *cobra.Command {
	var f store.LedgerFilter
	var since string
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "The push ledger: every push, forced move and refused push",
		Example: `  sailmaker audit ledger
  sailmaker audit ledger --repository fixture/pilot --since 24h
  sailmaker audit ledger --since 2025-01-01T00:00:00Z -o csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			a, err := o.auditor(cmd, g)
			if err != nil {
				return err
			}
			defer a.Close()
			res, err := a.Ledger(cmd.Context(), f)
			if err != nil {
				return err
			}
			return printAudit(cmd, o, res, res.Notes)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Repository, "repository", "", "only this repository")
	fl.StringVar(&f.Tag, "tag", "", "only this tag")
	fl.StringVar(&f.BuildID, "build", "", "only this build id")
	fl.StringVar(&since, "since", "", "only entries since a time (RFC 3339) or a duration ago (24h)")
	fl.IntVar(&f.Limit, "limit", 0, "only the newest N entries")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("--since: a duration must be positive")
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a time (2006-01-02T15:04:05Z) or a duration (24h)", s)
	}
	return t, nil
}
