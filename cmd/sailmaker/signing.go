package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/internal/output"
)

func init() { subcommands = append(subcommands, newSigningCmd) }

func newSigningCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "signing",
		Short: "Keys for signing the images builds push",
		Long: `With signing.key in the config (or $SAILMAKER_SIGNING_KEY) naming a private
key file, every build signs the images it pushes, cosign-style: the signature
is the tag sha256-<digest>.sig in the image's repository. Nothing goes over
the network but to the registry.`,
	}
	cmd.AddCommand(newSigningKeygenCmd(g))
	return cmd
}

type keygenOptions struct {
	out    string
	force  bool
	output *outputFlag
}

func newSigningKeygenCmd(_ *globalOptions) *cobra.Command {
	o := &keygenOptions{}
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Write a new ECDSA P-256 key pair: sailmaker.key and sailmaker.pub",
		Long: `Write a new ECDSA P-256 key pair into --out: sailmaker.key, the private key
(PEM, unencrypted PKCS#8, mode 0600), and sailmaker.pub, the public key (PEM
PKIX), which verifies the signatures. Existing files are not overwritten
unless --force.`,
		Example: `  sailmaker signing keygen --out /etc/sailmaker
  export SAILMAKER_SIGNING_KEY=/etc/sailmaker/sailmaker.key
  sailmaker signing keygen --out /etc/sailmaker -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeygen(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.out, "out", ".", "directory to write sailmaker.key and sailmaker.pub into")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite existing key files")
	o.output = addOutputFlag(cmd, output.Documents...)
	return cmd
}

func runKeygen(stdout io.Writer, o *keygenOptions) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", o.out, err)
	}
	privPath, pubPath := filepath.Join(o.out, "sailmaker.key"), filepath.Join(o.out, "sailmaker.pub")
	if !o.force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s exists: refusing to replace a key (--force to overwrite)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
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
