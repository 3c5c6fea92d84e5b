package service

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/sailmaker/sailmaker/builder/pool"
)

// Workers returns the service's pool of BuildKit workers.
func (c *Client) Workers(ctx context.Context) (*WorkersResponse, error) {
	out := &WorkersResponse{}
	if _, err := c.do(ctx, http.MethodGet, "/v1/workers", nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Drain stops new builds going to a worker; with wait > 0 the answer comes
// once its running builds have ended, or after wait. undo lets the worker
// take builds again.
func (c *Client) Drain(ctx context.Context, name string, wait time.Duration, undo bool) (*pool.Status, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if undo {
		q.Set("undo", "true")
	}
	path := "/v1/workers/" + url.PathEscape(name) + "/drain"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	out := &pool.Status{}
	if _, err := c.do(ctx, http.MethodPost, path, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}
