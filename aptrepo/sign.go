package aptrepo

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Signer signs a repository's Release file with an OpenPGP key.
type Signer struct {
	entity *openpgp.Entity
	key    openpgp.Key
}

// Key is a new OpenPGP key pair, as GenerateKey makes it.
type Key struct {
	// Private is the secret key, ASCII-armored, unencrypted: keep it 0600.
	Private []byte
	// Public is the public key, ASCII-armored (.asc): what apt's signed-by=
	// takes from a file ending in .asc.
	Public []byte
	// PublicKeyring is the public key in binary form (.gpg), what
	// signed-by= takes everywhere (older apt, gpgv --keyring).
	PublicKeyring []byte
	// Fingerprint is the key's fingerprint in hex (upper case).
	Fingerprint string
}

// GenerateKey makes a new OpenPGP key for signing apt repositories: an
// Ed25519 primary key (version 4, the EdDSA form that gpgv, sqv and apt
// verify), with the user ID name <email> (email optional), created at now,
// not expiring. Ed25519 signatures are deterministic, so the same Release
// signed at the same time gives the same bytes.
func GenerateKey(name, email string, now time.Time) (*Key, error) {
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("the key needs a name for its user ID")
	}
	if strings.ContainsAny(name+email, "()<>\x00\n") {
		return nil, errors.New("name and email must not contain ( ) < > or newlines")
	}
	cfg := &packet.Config{
		Algorithm:   packet.PubKeyAlgoEdDSA,
		Curve:       packet.Curve25519,
		DefaultHash: crypto.SHA512,
		Time:        func() time.Time { return now },
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("generating an OpenPGP key: %w", err)
	}
	k := &Key{Fingerprint: fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)}
	if k.Private, err = armored(openpgp.PrivateKeyType, func(w io.Writer) error { return e.SerializePrivate(w, cfg) }); err != nil {
		return nil, err
	}
	if k.Public, err = armored(openpgp.PublicKeyType, e.Serialize); err != nil {
		return nil, err
	}
	var bin bytes.Buffer
	if err := e.Serialize(&bin); err != nil {
		return nil, err
	}
	k.PublicKeyring = bin.Bytes()
	return k, nil
}

func armored(blockType string, write func(io.Writer) error) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, blockType, nil)
	if err != nil {
		return nil, err
	}
	if err := write(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// LoadSigner reads an unencrypted OpenPGP secret key (armored or binary)
// from path, as `sailmaker signing keygen --openpgp` writes it.
func LoadSigner(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the apt signing key: %w", err)
	}
	s, err := ParseSigner(data)
	if err != nil {
		return nil, fmt.Errorf("apt signing key %s: %w", path, err)
	}
	return s, nil
}

// ParseSigner reads an unencrypted OpenPGP secret key, armored or binary.
// It must hold exactly one key that can sign now.
func ParseSigner(data []byte) (*Signer, error) {
	var list openpgp.EntityList
	var err error
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		list, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		list, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("not an OpenPGP key: %w", err)
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("holds %d keys; give a file with exactly one", len(list))
	}
	e := list[0]
	if e.PrivateKey == nil {
		return nil, errors.New("is a public key; give the secret key (sailmaker-apt.asc)")
	}
	key, ok := e.SigningKey(time.Now())
	if !ok || key.PrivateKey == nil {
		return nil, errors.New("has no usable signing key (expired or revoked?)")
	}
	if key.PrivateKey.Encrypted {
		return nil, errors.New("is protected by a passphrase; sailmaker reads unencrypted keys (keep the file 0600)")
	}
	return &Signer{entity: e, key: key}, nil
}

// Fingerprint is the signing key's primary key fingerprint (hex, upper case).
func (s *Signer) Fingerprint() string { return fmt.Sprintf("%X", s.entity.PrimaryKey.Fingerprint) }

// Created is when the key was made; signatures cannot be older.
func (s *Signer) Created() time.Time { return s.key.PublicKey.CreationTime }

// PublicKey returns the public key, ASCII-armored and in binary form.
func (s *Signer) PublicKey() (armoredKey, keyring []byte, err error) {
	if armoredKey, err = armored(openpgp.PublicKeyType, s.entity.Serialize); err != nil {
		return nil, nil, err
	}
	var bin bytes.Buffer
	if err := s.entity.Serialize(&bin); err != nil {
		return nil, nil, err
	}
	return armoredKey, bin.Bytes(), nil
}

func (s *Signer) config(at time.Time) *packet.Config {
	if at.Before(s.Created()) {
		at = s.Created()
	}
	deterministic := false
	return &packet.Config{
		DefaultHash:  crypto.SHA512,
		Time:         func() time.Time { return at },
		SigningKeyId: s.key.PublicKey.KeyId,
		// No random salt notation: the same Release at the same time gets
		// the same signature (Ed25519 is deterministic).
		NonDeterministicSignaturesViaNotation: &deterministic,
	}
}

// ClearSign returns msg clearsigned (InRelease), signed at time at (or the
// key's creation time, if later).
func (s *Signer) ClearSign(msg []byte, at time.Time) ([]byte, error) {
	var buf bytes.Buffer
	w, err := clearsign.Encode(&buf, s.key.PrivateKey, s.config(at))
	if err != nil {
		return nil, fmt.Errorf("clearsigning: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return nil, fmt.Errorf("clearsigning: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("clearsigning: %w", err)
	}
	return withArmorChecksum(buf.Bytes())
}

// withArmorChecksum re-armors the signature block of a clearsigned message
// with the CRC-24 line: go-crypto leaves it out (RFC 9580), and gpgv 2.2,
// which apt on bookworm runs, then fails to read the block.
func withArmorChecksum(clearsigned []byte) ([]byte, error) {
	const begin = "-----BEGIN PGP SIGNATURE-----"
	i := bytes.Index(clearsigned, []byte("\n"+begin))
	if i < 0 {
		return nil, errors.New("clearsigning: no signature block in the output")
	}
	block, err := armor.Decode(bytes.NewReader(clearsigned[i+1:]))
	if err != nil {
		return nil, fmt.Errorf("clearsigning: reading the signature block: %w", err)
	}
	sig, err := io.ReadAll(block.Body)
	if err != nil {
		return nil, fmt.Errorf("clearsigning: reading the signature block: %w", err)
	}
	var out bytes.Buffer
	out.Write(clearsigned[:i+1])
	w, err := armor.Encode(&out, block.Type, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(sig); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// DetachSign returns an armored detached signature of msg (Release.gpg),
// signed at time at (or the key's creation time, if later).
func (s *Signer) DetachSign(msg []byte, at time.Time) ([]byte, error) {
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, s.entity, bytes.NewReader(msg), s.config(at)); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
