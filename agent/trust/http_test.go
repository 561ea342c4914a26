package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

// pki is a throwaway CA and a server certificate for 127.0.0.1 it issued.
type pki struct {
	caPEM  []byte
	server tls.Certificate
}

func newPKI(t testing.TB) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), nil)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(nil, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), nil)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pki{
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
}

func testCA(t testing.TB) []byte { return newPKI(t).caPEM }

func tlsServer(t *testing.T, cert tls.Certificate, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func pinned(t *testing.T, caPEM []byte) *Policy {
	pool, err := protocol.ParseCA(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &Policy{CA: pool, CAPEM: caPEM}
}

func TestAPIClient(t *testing.T) {
	line, rogue := newPKI(t), newPKI(t)
	var hits atomic.Int32
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "ok") })
	good := tlsServer(t, line.server, ok)
	impostor := tlsServer(t, rogue.server, ok)
	plain := httptest.NewServer(ok)
	t.Cleanup(plain.Close)
	// An HTTPS server that redirects the agent to plain HTTP: a downgrade by redirect.
	redirect := tlsServer(t, line.server, http.RedirectHandler(plain.URL+"/api/v1/hello", http.StatusTemporaryRedirect))

	p := pinned(t, line.caPEM)
	tests := []struct {
		name   string
		p      *Policy
		url    string
		reason Reason
		ok     bool
	}{
		{"pinned https", p, good.URL, "", true},
		{"pinned, server with another CA", p, impostor.URL, ReasonUntrusted, false},
		{"pinned, plain http", p, plain.URL, ReasonDowngrade, false},
		{"pinned, redirected to http", p, redirect.URL, ReasonDowngrade, false},
		{"unpinned http", &Policy{}, plain.URL, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			resp, err := tt.p.APIClient(5*time.Second).Post(tt.url+"/api/v1/hello", "application/json", nil)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tt.ok || ReasonOf(err) != tt.reason {
				t.Fatalf("err = %v (reason %q), want ok=%v reason %q", err, ReasonOf(err), tt.ok, tt.reason)
			}
			if !tt.ok && hits.Load() != before {
				t.Fatal("a refused request still reached a handler")
			}
		})
	}
}

func TestCheckAPIURL(t *testing.T) {
	p := pinned(t, testCA(t))
	if ReasonOf(p.CheckAPIURL("http://10.0.2.2:8080")) != ReasonDowngrade {
		t.Fatal("http accepted with a pinned CA")
	}
	if err := p.CheckAPIURL("https://10.0.2.2:8443"); err != nil {
		t.Fatal(err)
	}
	if err := (&Policy{}).CheckAPIURL("http://10.0.2.2:8080"); err != nil {
		t.Fatal(err)
	}
}

func TestDownloadClientAllowsHTTP(t *testing.T) {
	line := newPKI(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "bytes") })
	plain := httptest.NewServer(ok)
	t.Cleanup(plain.Close)
	rogue := tlsServer(t, newPKI(t).server, ok)
	p := pinned(t, line.caPEM)
	c := p.DownloadClient(5 * time.Second)
	resp, err := c.Get(plain.URL + "/img")
	if err != nil {
		t.Fatalf("plain HTTP image download refused: %v", err)
	}
	resp.Body.Close()
	if _, err := c.Get(rogue.URL + "/img"); ReasonOf(err) != ReasonUntrusted {
		t.Fatalf("HTTPS download from a foreign CA: %v", err)
	}
}
