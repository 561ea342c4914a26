package line

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

// cutter stands between the device and the server's images: the first image download it
// sees is cut after a number of bytes, as if the cable had been pulled mid-stream, so the
// agent must resume with a Range request. Later requests pass untouched.
type cutter struct {
	after int64
	used  atomic.Bool
	cuts  atomic.Int32
	srv   *http.Server
}

// startCutter serves on addr and forwards to upstream (the server's base URL).
func startCutter(addr, upstream string, after int64) (*cutter, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	c := &cutter{after: after}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		whole := resp.Request.Method == http.MethodGet && resp.Request.Header.Get("Range") == ""
		if resp.StatusCode == http.StatusOK && whole && !c.used.Swap(true) {
			resp.Body = &cutBody{ReadCloser: resp.Body, left: c.after, c: c}
		}
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cutting proxy: %w", err)
	}
	c.srv = &http.Server{Handler: proxy}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// Cuts is how many downloads were cut.
func (c *cutter) Cuts() int { return int(c.cuts.Load()) }

func (c *cutter) Close() { _ = c.srv.Shutdown(context.Background()) }

type cutBody struct {
	io.ReadCloser
	left int64
	c    *cutter
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.c.cuts.Add(1)
		// Abort the response: the proxy then drops the client connection mid-body.
		panic(http.ErrAbortHandler)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
