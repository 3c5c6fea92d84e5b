package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/internal/output"
)

func init() { subcommands = append(subcommands, newSigningCmd) }

func newSigningCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "signing",
		Short: "Keys for signing the images builds push and the apt repository",
		Long: `With signing.key in the config (or $SAILMAKER_SIGNING_KEY) naming a private
key file, every build signs the images it pushes, cosign-style: the signature
is the tag sha256-<digest>.sig in the image's repository. Nothing goes over
the network but to the registry.

With signing.aptKey (or $SAILMAKER_APT_KEY) naming an OpenPGP secret key
(keygen --openpgp), the apt repository's Release files are signed with it.`,
	}
	cmd.AddCommand(newSigningKeygenCmd(g))
	return cmd
}

type keygenOptions struct {
	out     string
	force   bool
	output  *outputFlag
	openpgp bool
	name    string
	email   string
}

func newSigningKeygenCmd(_ *globalOptions) *cobra.Command {
	o := &keygenOptions{}
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Write a new key pair: sailmaker.key and sailmaker.pub (images) or, with --openpgp, sailmaker-apt.* (apt repository)",
		Long: `Write a new ECDSA P-256 key pair into --out: sailmaker.key, the private key
(PEM, unencrypted PKCS#8, mode 0600), and sailmaker.pub, the public key (PEM
PKIX), which verifies the image signatures.

With --openpgp, write an OpenPGP key (Ed25519) for the apt repository
instead: sailmaker-apt.asc, the secret key (armored, unencrypted, mode
0600), and the public key twice, armored (sailmaker-apt.pub.asc) and as a
binary keyring (sailmaker-apt.gpg), the file apt's signed-by= names on the
machines that install from the repository.

Existing files are not overwritten unless --force.`,
		Example: `  sailmaker signing keygen --out /etc/sailmaker
  export SAILMAKER_SIGNING_KEY=/etc/sailmaker/sailmaker.key
  sailmaker signing keygen --out /etc/sailmaker -o json

  sailmaker signing keygen --openpgp --out /etc/sailmaker --email apt@example.org
  export SAILMAKER_APT_KEY=/etc/sailmaker/sailmaker-apt.asc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !o.openpgp && (cmd.Flags().Changed("name") || cmd.Flags().Changed("email")) {
				return errors.New("--name and --email are for --openpgp keys (the user ID of the apt signing key)")
			}
			if o.openpgp {
				return runKeygenOpenPGP(cmd.OutOrStdout(), o, time.Now())
			}
			return runKeygen(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.out, "out", ".", "directory to write the key files into")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite existing key files")
	o.output = addOutputFlag(cmd, output.Documents...)
	cmd.Flags().BoolVar(&o.openpgp, "openpgp", false, "write an OpenPGP key for signing the apt repository")
	cmd.Flags().StringVar(&o.name, "name", "sailmaker apt repository", "with --openpgp: the name in the key's user ID")
	cmd.Flags().StringVar(&o.email, "email", "", "with --openpgp: the email in the key's user ID (optional)")
	return cmd
}

// OpenPGP key files keygen --openpgp writes.
const (
	aptKeyFile     = "sailmaker-apt.asc"
	aptPubFile     = "sailmaker-apt.pub.asc"
	aptKeyringFile = "sailmaker-apt.gpg"
)

func runKeygenOpenPGP(stdout io.Writer, o *keygenOptions, now time.Time) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", o.out, err)
	}
	paths := []string{filepath.Join(o.out, aptKeyFile), filepath.Join(o.out, aptPubFile), filepath.Join(o.out, aptKeyringFile)}
	if err := refuseExisting(paths, o.force); err != nil {
		return err
	}
	key, err := aptrepo.GenerateKey(o.name, o.email, now)
	if err != nil {
		return fmt.Errorf("generating the apt signing key: %w", err)
	}
	if err := writeKeyFile(paths[0], key.Private, 0o600); err != nil {
		return err
	}
	if err := writeKeyFile(paths[1], key.Public, 0o644); err != nil {
		return err
	}
	if err := writeKeyFile(paths[2], key.PublicKeyring, 0o644); err != nil {
		return err
	}
	k := &aptKeyPair{Fingerprint: key.Fingerprint, written: paths}
	for i, dst := range []*string{&k.PrivateKey, &k.PublicKey, &k.Keyring} {
		if *dst, err = filepath.Abs(paths[i]); err != nil {
			*dst = paths[i]
		}
	}
	return o.output.write(stdout, k)
}

// aptKeyPair is what `signing keygen --openpgp` prints: the files it wrote.
type aptKeyPair struct {
	PrivateKey  string `json:"privateKey"`
	PublicKey   string `json:"publicKey"`
	Keyring     string `json:"keyring"`
	Fingerprint string `json:"fingerprint"`
	written     []string
}

func (k *aptKeyPair) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "wrote %s (private, keep it secret), %s and %s (public)\n", k.written[0], k.written[1], k.written[2])
	fmt.Fprintf(w, "fingerprint %s\n", k.Fingerprint)
	fmt.Fprintf(w, "to sign the apt repository: signing.aptKey: %s in the config, or SAILMAKER_APT_KEY=%s\n", k.PrivateKey, k.PrivateKey)
	_, err := fmt.Fprintf(w, "on each machine that installs from it: copy %s to /etc/apt/keyrings/ and name it in signed-by=\n", aptKeyringFile)
	return err
}

// refuseExisting fails when one of paths exists, unless force.
func refuseExisting(paths []string, force bool) error {
	if force {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to replace a key (--force to overwrite)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func runKeygen(stdout io.Writer, o *keygenOptions) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", o.out, err)
	}
	privPath, pubPath := filepath.Join(o.out, "sailmaker.key"), filepath.Join(o.out, "sailmaker.pub")
	if err := refuseExisting([]string{privPath, pubPath}, o.force); err != nil {
		return err
	}
	priv, pub, err := attest.GenerateKey()
	if err != nil {
		return fmt.Errorf("generating the key: %w", err)
	}
	if err := writeKeyFile(privPath, priv, 0o600); err != nil {
		return err
	}
	if err := writeKeyFile(pubPath, pub, 0o644); err != nil {
		return err
	}
	abs, err := filepath.Abs(privPath)
	if err != nil {
		abs = privPath
	}
	pubAbs, err := filepath.Abs(pubPath)
	if err != nil {
		pubAbs = pubPath
	}
	k := &keyPair{PrivateKey: abs, PublicKey: pubAbs, written: [2]string{privPath, pubPath}}
	return o.output.write(stdout, k)
}

// keyPair is what `signing keygen` prints: the files it wrote.
type keyPair struct {
	PrivateKey string `json:"privateKey"`
	PublicKey  string `json:"publicKey"`
	written    [2]string
}

func (k *keyPair) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "wrote %s (private, keep it secret) and %s (public)\n", k.written[0], k.written[1])
	_, err := fmt.Fprintf(w, "to sign builds: signing.key: %s in the config, or SAILMAKER_SIGNING_KEY=%s\n", k.PrivateKey, k.PrivateKey)
	return err
}

// writeKeyFile writes data with exactly mode (not widened by an existing
// file's mode or narrowed by the umask).
func writeKeyFile(p string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return f.Close()
}
