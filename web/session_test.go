package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/service"
)

func requestWith(id string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: id})
	return r
}

func TestSessionsExpire(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ss := newSessions(2 * time.Hour)
	ss.now = func() time.Time { return now }
	id, s := ss.create(&service.Principal{Name: "alice", Role: "maintainer"})
	assert.NotEqual(t, id, s.key, "the table keeps the id's hash, not the id")
	assert.Same(t, s, ss.lookup(requestWith(id)))
	assert.Nil(t, ss.lookup(requestWith(id+"x")))
	assert.Nil(t, ss.lookup(httptest.NewRequest("GET", "/", nil)))

	// A session not logged in lasts an hour at most.
	pre, _ := ss.create(nil)
	now = now.Add(61 * time.Minute)
	assert.Nil(t, ss.lookup(requestWith(pre)))
	assert.NotNil(t, ss.lookup(requestWith(id)))
	now = now.Add(time.Hour)
	assert.Nil(t, ss.lookup(requestWith(id)), "expired after its TTL")
}

// Past maxSessions, sessions not logged in go first, then the oldest.
func TestSessionsEvict(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ss := newSessions(time.Hour)
	ss.now = func() time.Time { now = now.Add(time.Millisecond); return now }
	first, _ := ss.create(&service.Principal{Name: "first", Role: "auditor"})
	for range maxSessions - 2 {
		ss.create(&service.Principal{Name: "x", Role: "auditor"})
	}
	anon, _ := ss.create(nil)
	require.Len(t, ss.m, maxSessions)
	ss.create(&service.Principal{Name: "new", Role: "auditor"})
	assert.Nil(t, ss.lookup(requestWith(anon)), "the session not logged in went first")
	assert.NotNil(t, ss.lookup(requestWith(first)))
	ss.create(&service.Principal{Name: "newer", Role: "auditor"})
	assert.Nil(t, ss.lookup(requestWith(first)), "then the oldest")
	assert.Len(t, ss.m, maxSessions)
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "/",
		"/builds/x?state=a":    "/builds/x?state=a",
		"//evil.example/":      "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"builds":               "/",
		"/login?next=/x":       "/",
		"/x\r\nSet-Cookie: a":  "/",
	} {
		assert.Equal(t, want, localPath(in), in)
	}
}

// The worker column reads the build's "worker": a name, or an object with
// a name or an id; empty while builds record none.
func TestWorkerColumn(t *testing.T) {
	assert.Equal(t, "", workerOf(&service.Build{ID: "b"}))
	assert.Equal(t, "w1", workerFromJSON([]byte(`{"id": "b", "worker": "w1"}`)))
	assert.Equal(t, "w2", workerFromJSON([]byte(`{"worker": {"name": "w2", "id": "x"}}`)))
	assert.Equal(t, "x", workerFromJSON([]byte(`{"worker": {"id": "x"}}`)))
	assert.Equal(t, "", workerFromJSON([]byte(`{"worker": null}`)))
}
