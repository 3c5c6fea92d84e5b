package service

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Time limits for HTTP clients, so that slow or stalled clients cannot
// hold connections (slowloris): the request line and headers must arrive
// within ReadHeaderTimeout, a request's body within BodyTimeout of its
// headers, and an idle keep-alive connection is closed after IdleTimeout.
// Answers are not limited: a followed build log streams for as long as
// the build runs.
const (
	ReadHeaderTimeout = 10 * time.Second
	BodyTimeout       = 20 * time.Second
	// ReadTimeout is the server's limit on reading a whole request; the
	// service's handler narrows it to BodyTimeout for requests with a
	// body and lifts it for those without (whose answer may stream).
	ReadTimeout = 30 * time.Second
	IdleTimeout = 30 * time.Second
)

// HTTPServer is an http.Server for the service's handler with the time
// limits above; `sailmaker serve` runs it.
func (s *Service) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// bodyDeadline gives each request's body BodyTimeout to arrive, whatever
// server runs the handler; once the body is read (or for a request
// without one) the connection has no read deadline, so that a long answer
// (a followed log, a cancel that waits for the build to stop) is not cut
// when the server's ReadTimeout passes.
func (s *Service) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
			_ = rc.SetReadDeadline(time.Time{})
		} else {
			_ = rc.SetReadDeadline(time.Now().Add(s.bodyTimeout))
			r.Body = &deadlineBody{ReadCloser: r.Body, done: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body is read to its end.
type deadlineBody struct {
	io.ReadCloser
	done   func()
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		b.done()
	}
	return n, err
}

// isTimeout says whether a body read failed because its deadline passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
