package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/builder/pool"
	"github.com/sailmaker/sailmaker/internal/output"
)

func init() { subcommands = append(subcommands, newCertsCmd) }

type certsNewOptions struct {
	out      string
	workers  []string
	sans     []string
	client   string
	noClient bool
	days     int
	force    bool
	output   *outputFlag
}

func newCertsCmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make the mutual TLS certificates of the BuildKit workers",
	}
	o := &certsNewOptions{}
	newCmd := &cobra.Command{
		Use:   "new --out DIR --worker NAME...",
		Short: "Make a CA, a server certificate per worker and a client certificate",
		Long: `Write, for buildkitd's mutual TLS, into DIR:

  ca.pem, ca-key.pem            the CA (kept: a CA already in DIR signs the rest)
  <worker>.pem, <worker>-key.pem one server certificate per --worker, for the
                                worker's name, localhost, 127.0.0.1, ::1 and --san
  client.pem, client-key.pem    the service's client certificate

Start each worker with --tlscacert ca.pem --tlscert <worker>.pem --tlskey
<worker>-key.pem (or the [grpc.tls] section of buildkitd.toml); give the service
ca.pem, client.pem and client-key.pem in buildkit.workers. Keys are ECDSA
P-256 and written 0600; keep ca-key.pem away from the workers.`,
		Example: `  sailmaker certs new --out /etc/sailmaker/certs --worker bk-0 --worker bk-1 --worker bk-2
  sailmaker certs new --out certs --worker bk-0,bk-1 --san '{worker}.buildkitd.sailmaker.svc'
  sailmaker certs new --out certs --worker bk-3 --no-client   # add a worker to an existing CA`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.out == "" {
				return fmt.Errorf("--out DIR is required: where the certificates go")
			}
			if len(o.workers) == 0 && o.noClient {
				return fmt.Errorf("nothing to make: give --worker NAME, or leave out --no-client")
			}
			if o.days < 1 {
				return fmt.Errorf("--days %d: must be at least 1", o.days)
			}
			return runCertsNew(cmd.OutOrStdout(), o)
		},
	}
	f := newCmd.Flags()
	f.StringVar(&o.out, "out", "", "directory to write the files to (created if missing)")
	f.StringSliceVar(&o.workers, "worker", nil, "a worker's name (repeatable, or comma-separated): one server certificate each")
	f.StringSliceVar(&o.sans, "san", nil, "a further DNS name or IP of every server certificate; {worker} is replaced by the worker's name")
	f.StringVar(&o.client, "client-name", "sailmaker", "the client certificate's common name")
	f.BoolVar(&o.noClient, "no-client", false, "make no client certificate")
	f.IntVar(&o.days, "days", 365, "validity of the new certificates, in days")
	f.BoolVar(&o.force, "force", false, "replace certificates that exist (the CA is always kept)")
	o.output = addOutputFlag(newCmd, output.Documents...)
	cmd.AddCommand(newCmd)
	return cmd
}

func runCertsNew(w io.Writer, o *certsNewOptions) error {
	files, err := pool.MakeCerts(pool.CertOptions{
		Dir: o.out, Workers: o.workers, SANs: o.sans, Client: o.client, NoClient: o.noClient,
		Validity: time.Duration(o.days) * 24 * time.Hour, Force: o.force,
	})
	if err != nil {
		return err
	}
	return o.output.write(w, certsMade{files, o.out})
}

// certsMade prints the files certs new wrote: for people, with the
// commands and config that use them.
type certsMade struct {
	*pool.CertFiles
	dir string
}

func (c certsMade) MarshalJSON() ([]byte, error) { return json.Marshal(c.CertFiles) }

func (c certsMade) WriteText(w io.Writer) error {
	files := c.CertFiles
	ca := "made"
	if !files.NewCA {
		ca = "kept: it signed the new certificates"
	}
	fmt.Fprintf(w, "CA:      %s, %s (%s)\n", files.CACert, files.CAKey, ca)
	names := make([]string, 0, len(files.Workers))
	for n := range files.Workers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		kp := files.Workers[n]
		fmt.Fprintf(w, "worker:  %s, %s for %v\n", kp.Cert, kp.Key, kp.SANs)
	}
	if files.Client != nil {
		fmt.Fprintf(w, "client:  %s, %s\n", files.Client.Cert, files.Client.Key)
		fmt.Fprintf(w, "\nStart each worker with:\n  buildkitd --addr tcp://0.0.0.0:1234 --tlscacert %s --tlscert %s/<worker>.pem --tlskey %s/<worker>-key.pem\n", files.CACert, c.dir, c.dir)
		fmt.Fprintf(w, "\nand give the service (config.yaml):\nbuildkit:\n  workers:\n")
		for _, n := range names {
			fmt.Fprintf(w, "    - {name: %s, address: \"tcp://%s:1234\", caCert: %s, cert: %s, key: %s, slots: 1}\n", n, n, files.CACert, files.Client.Cert, files.Client.Key)
		}
	}
	return nil
}
