package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Client talks to a running service.
type Client struct {
	// URL is the service's base URL (http://127.0.0.1:8080).
	URL string
	// Token is sent as the bearer token; empty sends none.
	Token string
	HTTP  *http.Client
}

// NewClient returns a client for the service at base.
func NewClient(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: must be http(s)://host[:port]", base)
	}
	return &Client{URL: strings.TrimSuffix(base, "/"), Token: token, HTTP: &http.Client{}}, nil
}

// APIError is an error answer of the service.
type APIError struct {
	Status  int
	Code    string
	Message string
	Details []string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	if len(e.Details) > 0 {
		msg += ":\n  " + strings.Join(e.Details, "\n  ")
	}
	return msg
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the sailmaker service at %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp, readAPIError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("reading the service's answer to %s %s: %w", method, path, err)
		}
	}
	return resp, nil
}

func readAPIError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body struct {
		Error apiError `json:"error"`
	}
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Message == "" {
		return &APIError{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(resp.Status + ": " + string(data))}
	}
	return &APIError{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message, Details: body.Error.Details}
}

// Submit queues a build; created is false when the service joined the
// request to the same build already queued or running.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (b *Build, created bool, err error) {
	b = &Build{}
	resp, err := c.do(ctx, http.MethodPost, "/v1/builds", req, b)
	if err != nil {
		return nil, false, err
	}
	return b, resp.StatusCode == http.StatusAccepted, nil
}

// Get returns one build.
func (c *Client) Get(ctx context.Context, id string) (*Build, error) {
	b := &Build{}
	if _, err := c.do(ctx, http.MethodGet, "/v1/builds/"+url.PathEscape(id), nil, b); err != nil {
		return nil, err
	}
	return b, nil
}

// List returns builds, newest first.
func (c *Client) List(ctx context.Context, f ListFilter) ([]Build, error) {
	q := url.Values{}
	var states []string
	for _, s := range f.States {
		states = append(states, string(s))
	}
	if len(states) > 0 {
		q.Set("state", strings.Join(states, ","))
	}
	if f.Recipe != "" {
		q.Set("recipe", f.Recipe)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct {
		Builds []Build `json:"builds"`
	}
	path := "/v1/builds"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if _, err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Builds, nil
}

// Cancel cancels a build and returns it as it is then.
func (c *Client) Cancel(ctx context.Context, id string) (*Build, error) {
	b := &Build{}
	if _, err := c.do(ctx, http.MethodPost, "/v1/builds/"+url.PathEscape(id)+"/cancel", nil, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Log copies a build's log to w from byte offset on. With follow it goes on
// until the build has ended, resuming where it was when the stream breaks
// (the service restarting, say) for up to retryFor; it returns the build as
// it ended.
func (c *Client) Log(ctx context.Context, id string, offset int64, follow bool, w io.Writer, retryFor time.Duration) (*Build, error) {
	var failingSince time.Time
	for {
		n, err := c.logOnce(ctx, id, offset, follow, w)
		offset += n
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ae *APIError
		if errors.As(err, &ae) {
			return nil, err
		}
		if err == nil {
			b, gerr := c.Get(ctx, id)
			if errors.As(gerr, &ae) {
				return nil, gerr
			}
			if gerr == nil && (!follow || b.State.Final()) {
				return b, nil
			}
			err = gerr
		}
		if err != nil {
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > retryFor {
				return nil, err
			}
		} else {
			failingSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (c *Client) logOnce(ctx context.Context, id string, offset int64, follow bool, w io.Writer) (int64, error) {
	q := url.Values{"follow": {strconv.FormatBool(follow)}}
	if offset > 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/v1/builds/"+url.PathEscape(id)+"/log?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("calling the sailmaker service at %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return 0, readAPIError(resp)
	}
	return io.Copy(w, resp.Body)
}

// RecipeDocument turns a recipe file (YAML or JSON) into the JSON object
// POST /v1/builds takes inline. Scalars keep their text as written (a
// version 1.20 stays "1.20", a mode 0644 stays "0644"): the service reads
// them as the recipe parser reads the file.
func RecipeDocument(data []byte) (json.RawMessage, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("reading the recipe: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil, errors.New("reading the recipe: the file holds no document")
	}
	v, err := nodeJSON(root.Content[0], 0)
	if err != nil {
		return nil, fmt.Errorf("reading the recipe: %w", err)
	}
	return json.Marshal(v)
}

func nodeJSON(n *yaml.Node, depth int) (any, error) {
	if depth > 100 {
		return nil, errors.New("the document nests too deeply")
	}
	switch n.Kind {
	case yaml.AliasNode:
		return nodeJSON(n.Alias, depth+1)
	case yaml.MappingNode:
		obj := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key must be a plain string", k.Line)
			}
			if _, dup := obj[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := nodeJSON(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			obj[k.Value] = v
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeJSON(c, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, err
			}
			return b, nil
		}
		return n.Value, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}
