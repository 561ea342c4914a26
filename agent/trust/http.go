package trust

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/flashline/flashline/protocol"
)

// CheckAPIURL refuses a line API base URL that would bypass the pinned CA. Call it on the URL
// from the kernel command line before the first request, so the console says why at once.
func (p *Policy) CheckAPIURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return protocol.BadServerURL(fmt.Errorf("line server URL %q: %w", raw, err))
	}
	if p.Pinned() && u.Scheme != "https" {
		return refuse(ReasonDowngrade, "line server %s is not HTTPS, but this agent pins the line's CA: refusing to talk to the API over plain HTTP (rogue DHCP or boot server?)", raw)
	}
	return nil
}

// tlsConfig trusts the pinned CA only; without a pin it uses the system roots (a development
// agent on a workstation).
func (p *Policy) tlsConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.Pinned() {
		c.RootCAs = p.CA
	}
	return c
}

// APIClient is the HTTP client for the line API (hello, events, result). With a pinned CA it
// only speaks HTTPS verified against that CA, on every request and every redirect, and
// reports a plain-HTTP request or a foreign certificate as a Refusal.
func (p *Policy) APIClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = p.tlsConfig()
	var rt http.RoundTripper = tr
	if p.Pinned() {
		rt = pinnedTransport{next: tr}
	}
	return &http.Client{Timeout: timeout, Transport: rt}
}

// DownloadClient is the HTTP client for images and scenarios. Plain HTTP is allowed, because
// what it fetches is checked against hashes in the signed job; HTTPS still verifies against
// the pinned CA when there is one.
func (p *Policy) DownloadClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = p.tlsConfig()
	return &http.Client{Timeout: timeout, Transport: untrustedTransport{next: tr}}
}

// pinnedTransport refuses plain HTTP before any byte is sent: even the Hello (inventory and
// nonce) must not reach a server that cannot prove it holds a certificate from the line's CA.
type pinnedTransport struct{ next http.RoundTripper }

func (t pinnedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, refuse(ReasonDowngrade, "refusing plain HTTP to the line API at %s: this agent pins the line's CA", req.URL.Redacted())
	}
	return untrustedTransport(t).RoundTrip(req)
}

// untrustedTransport turns certificate verification failures into Refusals.
type untrustedTransport struct{ next http.RoundTripper }

func (t untrustedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return nil, refuse(ReasonUntrusted, "%s presented a certificate not issued by the pinned line CA: %v", req.URL.Host, cv.Err)
		}
	}
	return resp, err
}
