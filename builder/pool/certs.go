package pool

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertOptions say which certificates MakeCerts writes.
type CertOptions struct {
	// Dir receives the files. A ca.pem and ca-key.pem already there sign
	// the new certificates (to add a worker later); otherwise a new CA is
	// made.
	Dir string
	// Workers get one server certificate each, named <worker>.pem and
	// <worker>-key.pem, for the worker's name, 127.0.0.1, ::1, localhost
	// and SANs.
	Workers []string
	// SANs are further DNS names or IP addresses of every server
	// certificate; "{worker}" in one is replaced by the worker's name
	// ({worker}.buildkitd.sailmaker.svc).
	SANs []string
	// Client is the client certificate's name (client.pem, client-key.pem);
	// default "sailmaker". Empty Workers and NoClient write only the CA.
	Client   string
	NoClient bool
	// Validity of the new certificates; default one year (the CA: ten).
	Validity time.Duration
	// Force overwrites certificates that exist (never the CA).
	Force bool
	// Now is the start of validity; default time.Now().
	Now time.Time
}

// CertFiles are the files MakeCerts wrote or used.
type CertFiles struct {
	CACert string `json:"caCert"`
	CAKey  string `json:"caKey"`
	// NewCA: the CA was made now, not found in Dir.
	NewCA bool `json:"newCA"`
	// Workers: worker name -> its server certificate and key.
	Workers map[string]KeyPair `json:"workers"`
	Client  *KeyPair           `json:"client,omitempty"`
}

// KeyPair is a certificate and its private key.
type KeyPair struct {
	Cert string   `json:"cert"`
	Key  string   `json:"key"`
	SANs []string `json:"sans,omitempty"`
}

// MakeCerts writes a CA (unless Dir has one), a server certificate per
// worker and a client certificate, for buildkitd's mutual TLS: the
// workers are started with --tlscacert ca.pem --tlscert <worker>.pem
// --tlskey <worker>-key.pem, and the service connects with ca.pem,
// client.pem and client-key.pem. Keys are ECDSA P-256, written 0600.
func MakeCerts(o CertOptions) (*CertFiles, error) {
	if o.Dir == "" {
		return nil, errors.New("certs: no output directory")
	}
	if o.Validity <= 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Client == "" {
		o.Client = "sailmaker"
	}
	seen := map[string]bool{}
	for _, w := range o.Workers {
		if !workerName(w) {
			return nil, fmt.Errorf("--worker %q: a worker name is a DNS label: lower-case letters, digits and '-'", w)
		}
		if seen[w] || w == "ca" || w == "client" {
			return nil, fmt.Errorf("--worker %q: given twice, or a reserved name (ca, client)", w)
		}
		seen[w] = true
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	files := &CertFiles{CACert: filepath.Join(o.Dir, "ca.pem"), CAKey: filepath.Join(o.Dir, "ca-key.pem"), Workers: map[string]KeyPair{}}
	// Refuse before writing anything.
	var targets []string
	for _, w := range o.Workers {
		targets = append(targets, filepath.Join(o.Dir, w+".pem"), filepath.Join(o.Dir, w+"-key.pem"))
	}
	if !o.NoClient {
		targets = append(targets, filepath.Join(o.Dir, "client.pem"), filepath.Join(o.Dir, "client-key.pem"))
	}
	if !o.Force {
		for _, t := range targets {
			if _, err := os.Stat(t); err == nil {
				return nil, fmt.Errorf("certs: %s exists: pass --force to replace it (the CA is kept either way)", t)
			}
		}
	}

	caCert, caKey, err := loadCA(files.CACert, files.CAKey)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		caCert, caKey, err = newCA(files.CACert, files.CAKey, o.Now)
		if err != nil {
			return nil, err
		}
		files.NewCA = true
	default:
		return nil, err
	}
	for _, w := range o.Workers {
		sans := []string{w, "localhost", "127.0.0.1", "::1"}
		for _, s := range o.SANs {
			sans = append(sans, strings.ReplaceAll(s, "{worker}", w))
		}
		kp := KeyPair{Cert: filepath.Join(o.Dir, w+".pem"), Key: filepath.Join(o.Dir, w+"-key.pem"), SANs: dedup(sans)}
		if err := issue(caCert, caKey, kp, w, kp.SANs, x509.ExtKeyUsageServerAuth, o); err != nil {
			return nil, err
		}
		files.Workers[w] = kp
	}
	if !o.NoClient {
		kp := KeyPair{Cert: filepath.Join(o.Dir, "client.pem"), Key: filepath.Join(o.Dir, "client-key.pem")}
		if err := issue(caCert, caKey, kp, o.Client, nil, x509.ExtKeyUsageClientAuth, o); err != nil {
			return nil, err
		}
		files.Client = &kp
	}
	return files, nil
}

func workerName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(certPath, keyPath string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "sailmaker buildkit CA", Organization: []string{"sailmaker"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("making the CA: %w", err)
	}
	if err := writeKeyPair(certPath, keyPath, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func loadCA(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		if _, kerr := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) && kerr == nil {
			return nil, nil, fmt.Errorf("certs: %s exists without %s: remove it, or put the CA certificate back", keyPath, certPath)
		}
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s exists but its key cannot be read (%w): sailmaker signs with the CA's key", certPath, err)
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, fmt.Errorf("certs: %s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s: %w", certPath, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s: %w", keyPath, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("certs: %s is not the key of %s", keyPath, certPath)
	}
	return cert, key, nil
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, kp KeyPair, cn string, sans []string, usage x509.ExtKeyUsage, o CertOptions) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"sailmaker"}},
		NotBefore:    o.Now.Add(-5 * time.Minute),
		NotAfter:     o.Now.Add(o.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("making the certificate of %s: %w", cn, err)
	}
	return writeKeyPair(kp.Cert, kp.Key, der, key)
}

func writeKeyPair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
