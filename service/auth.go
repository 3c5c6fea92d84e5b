package service

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/sailmaker/sailmaker/config"
)

// TokenPrefix starts every token `sailmaker token new` makes, so that secret
// scanners can recognise one.
const TokenPrefix = "smk_"

// NewToken returns a fresh random token (32 bytes) and the hex sha256 that
// goes into the config.
func NewToken() (token, sum string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("reading random bytes: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the hex sha256 of a token, as the config keeps it. Tokens are
// 32 random bytes, so a fast hash is enough.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// principal is who a request acts as.
type principal struct {
	Name string
	Role string
}

// anonymous is every caller of a service without tokens (loopback only).
var anonymous = &principal{Name: "anonymous", Role: config.RoleAdmin}

type tokenEntry struct {
	name, role string
	sum        []byte
}

type authenticator struct {
	tokens []tokenEntry
}

func newAuthenticator(tokens []config.ServerToken) (*authenticator, error) {
	a := &authenticator{}
	for _, t := range tokens {
		sum, err := hex.DecodeString(strings.ToLower(t.SHA256))
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("token %s: sha256 is not 64 hex digits", t.Name)
		}
		a.tokens = append(a.tokens, tokenEntry{name: t.Name, role: t.Role, sum: sum})
	}
	return a, nil
}

func (a *authenticator) open() bool { return len(a.tokens) == 0 }

// authenticate finds the token of a request's bearer credentials. It
// compares the hash with every configured token, in constant time each, so
// the time taken does not tell which (or whether one) matched.
func (a *authenticator) authenticate(r *http.Request) (*principal, bool) {
	if a.open() {
		return anonymous, true
	}
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	return a.byToken(strings.TrimSpace(tok))
}

// byToken finds a token's principal: anonymous on an open service.
func (a *authenticator) byToken(tok string) (*principal, bool) {
	if a.open() {
		return anonymous, true
	}
	if tok == "" {
		return nil, false
	}
	sum := sha256.Sum256([]byte(tok))
	var found *principal
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum) == 1 {
			found = &principal{Name: t.name, Role: t.role}
		}
	}
	return found, found != nil
}

// allows says whether role may do what needs requires: admin includes
// maintainer, which includes auditor; ci is only for the webhook.
func allows(role, needs string) bool {
	rank := map[string]int{config.RoleAuditor: 1, config.RoleMaintainer: 2, config.RoleAdmin: 3}
	if needs == config.RoleCI {
		return role == config.RoleCI || role == config.RoleAdmin
	}
	r, ok := rank[role]
	return ok && r >= rank[needs]
}

// SignatureHeader carries the webhook body's HMAC-SHA256, GitHub style:
// "sha256=<hex>".
const SignatureHeader = "X-Hub-Signature-256"

// Sign is the SignatureHeader value for body with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// validSignature checks header against body's HMAC in constant time.
func validSignature(secret, header string, body []byte) bool {
	if secret == "" {
		return false
	}
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
