// Package lineclient is the agent's HTTP client for the line server's /api/v1 protocol. It
// retries what is safe to retry: events are idempotent by sequence number and the final result
// by run id, so a request whose answer was lost is simply sent again.
package lineclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Client talks to one line server.
type Client struct {
	base *url.URL
	hc   *http.Client
}

// New returns a client for the server at baseURL (e.g. http://10.0.2.2:8080). A nil hc uses a
// client with a 30 s timeout per request.
func New(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, protocol.BadServerURL(fmt.Errorf("line server URL %q: %w", baseURL, err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, protocol.BadServerURL(fmt.Errorf("line server URL %q: want http(s)://host[:port]", baseURL))
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, hc: hc}, nil
}

// BaseURL is the server's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// HTTPClient is the client's HTTP client, for downloads that should share its transport (TLS).
func (c *Client) HTTPClient() *http.Client { return c.hc }

// Resolve turns a URL from a job (possibly relative to the server) into an absolute URL.
func (c *Client) Resolve(ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("URL %q: %w", ref, err)
	}
	return c.base.ResolveReference(r).String(), nil
}

// StatusError is a non-2xx answer from the server.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Code, e.Message)
}

// Temporary reports whether repeating the request may succeed (server-side or throttling).
func (e *StatusError) Temporary() bool {
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout
}

// Hello sends the device's inventory and returns the server's answer (a job or "wait").
func (c *Client) Hello(ctx context.Context, h protocol.Hello) (*protocol.HelloResponse, error) {
	var resp protocol.HelloResponse
	if err := c.do(ctx, http.MethodPost, protocol.PathHello, "", h, &resp); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	return &resp, nil
}

// PostEvents sends a batch of events and returns the highest acknowledged sequence number.
// b.Secret, the run's secret, goes in the Authorization header.
func (c *Client) PostEvents(ctx context.Context, b protocol.EventBatch) (int64, error) {
	var ack protocol.EventAck
	if err := c.do(ctx, http.MethodPost, fmt.Sprintf(protocol.PathEvents, url.PathEscape(b.RunID)), b.Secret, b, &ack); err != nil {
		return 0, fmt.Errorf("post events: %w", err)
	}
	return ack.Seq, nil
}

// PutResult stores the final result once. r.Secret, the run's secret, goes in the
// Authorization header.
func (c *Client) PutResult(ctx context.Context, r protocol.Result) (*protocol.ResultAck, error) {
	var ack protocol.ResultAck
	if err := c.do(ctx, http.MethodPut, fmt.Sprintf(protocol.PathResult, url.PathEscape(r.RunID)), r.Secret, r, &ack); err != nil {
		return nil, fmt.Errorf("put result: %w", err)
	}
	return &ack, nil
}

// PutResultRetrying retries PutResult with capped exponential backoff until the server
// acknowledges, ctx ends, or the server refuses the result for good (a 4xx). onRetry, when not
// nil, is told about each failed attempt (for the console).
func (c *Client) PutResultRetrying(ctx context.Context, r protocol.Result, onRetry func(err error, wait time.Duration)) (*protocol.ResultAck, error) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 15 * time.Second}
	for {
		ack, err := c.PutResult(ctx, r)
		if err == nil {
			return ack, nil
		}
		var se *StatusError
		if errors.As(err, &se) && !se.Temporary() {
			return nil, err
		}
		wait := b.Next()
		if onRetry != nil {
			onRetry(err, wait)
		}
		if err := Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("put result: gave up: %w", err)
		}
	}
}

// Fetch GETs an artifact (a scenario) of at most limit bytes.
func (c *Client) Fetch(ctx context.Context, ref string, limit int64) ([]byte, error) {
	u, err := c.Resolve(ref)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: %w", u, statusError(resp))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("fetch %s: larger than %d bytes", u, limit)
	}
	return b, nil
}

// do sends in as JSON and decodes the answer into out; a non-empty token is sent as a bearer
// credential.
func (c *Client) do(ctx context.Context, method, path, token string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	u := c.base.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", protocol.BearerHeader(token))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, protocol.MaxBodyBytes)).Decode(out); err != nil {
		return fmt.Errorf("decode %s answer: %w", path, err)
	}
	return nil
}

func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e protocol.Error
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &StatusError{Code: resp.StatusCode, Message: msg}
}

// Backoff yields capped exponential delays with jitter; the zero value is not useful, set Min
// and Max.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay: Min, 2*Min, 4*Min ... up to Max, each with +-20% jitter so that
// a line of devices rebooted together does not hammer the server in lockstep.
func (b *Backoff) Next() time.Duration {
	d := b.Min << b.n
	if d > b.Max || d <= 0 {
		d = b.Max
	} else {
		b.n++
	}
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return j
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.n = 0 }

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
