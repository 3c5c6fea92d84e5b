package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/sailmaker/sailmaker/service"
)

// maxSessions bounds the sessions kept in memory; past it, expired ones go,
// then the oldest not logged in, then the oldest.
const maxSessions = 4096

// loginTTL is how long a session that has not logged in yet (the login
// form's CSRF token) lasts.
const loginTTL = time.Hour

// session is one browser's login. The server keeps only the sha256 of the
// cookie's random id, so the table itself does not hold what a cookie
// holds.
type session struct {
	key       string
	principal *service.Principal // nil until logged in
	csrf      string
	created   time.Time
	expires   time.Time
}

func (s *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, m: map[string]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(id string) string {
	s := sha256.Sum256([]byte(id))
	return hex.EncodeToString(s[:])
}

// create makes a session and returns its id (the cookie's value).
func (ss *sessions) create(p *service.Principal) (string, *session) {
	id := randomToken()
	now := ss.now()
	ttl := ss.ttl
	if p == nil {
		ttl = min(ttl, loginTTL)
	}
	s := &session{key: sessionKey(id), principal: p, csrf: randomToken(), created: now, expires: now.Add(ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.evict(now)
	}
	ss.m[s.key] = s
	return id, s
}

// evict makes room: expired sessions, else the oldest one not logged in,
// else the oldest.
func (ss *sessions) evict(now time.Time) {
	for k, s := range ss.m {
		if now.After(s.expires) {
			delete(ss.m, k)
		}
	}
	if len(ss.m) < maxSessions {
		return
	}
	var oldest, oldestAnon *session
	for _, s := range ss.m {
		if oldest == nil || s.created.Before(oldest.created) {
			oldest = s
		}
		if s.principal == nil && (oldestAnon == nil || s.created.Before(oldestAnon.created)) {
			oldestAnon = s
		}
	}
	if oldestAnon != nil {
		oldest = oldestAnon
	}
	if oldest != nil {
		delete(ss.m, oldest.key)
	}
}

// lookup is the request's session, nil if it has none or it expired.
func (ss *sessions) lookup(r *http.Request) *session {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	key := sessionKey(c.Value)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[key]
	if s == nil {
		return nil
	}
	if ss.now().After(s.expires) {
		delete(ss.m, key)
		return nil
	}
	return s
}

func (ss *sessions) delete(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, s.key)
}
