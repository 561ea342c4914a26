package operatorauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flashline/flashline/server/config"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "operators CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testCA{c, key}
}

func (ca testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Over HTTPS, a client certificate from operators.client_ca whose CN is listed is an
// operator; another CN from the same CA is not, and a certificate from another CA does not
// even connect.
func TestClientCertificateOperators(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644)
	g, err := New(Options{Operators: config.Operators{ClientCA: caFile, ClientCertCNs: []string{"lead"}}})
	if err != nil {
		t.Fatal(err)
	}
	var actor string
	srv := httptest.NewUnstartedServer(g.Action(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { actor = Actor(r.Context()) })))
	srv.TLS = &tls.Config{}
	if err := ConfigureTLS(srv.TLS, caFile); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	defer srv.Close()
	do := func(cert *tls.Certificate) (int, error) {
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		c.Transport = tr
		resp, err := c.Post(srv.URL+"/dashboard/api/devices/52:54:00:00:00:01/reset", "", nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	lead, intern, foreign := ca.client(t, "lead"), ca.client(t, "intern"), other.client(t, "lead")
	if code, err := do(&lead); err != nil || code != http.StatusOK || actor != "cert:lead" {
		t.Errorf("listed CN: %d %v, actor %q", code, err, actor)
	}
	actor = ""
	if code, err := do(&intern); err != nil || code != http.StatusUnauthorized || actor != "" {
		t.Errorf("CN not listed: %d %v, actor %q", code, err, actor)
	}
	if code, err := do(nil); err != nil || code != http.StatusUnauthorized {
		t.Errorf("no certificate (a device): %d %v, want 401 over a working connection", code, err)
	}
	if code, err := do(&foreign); err == nil {
		t.Errorf("a certificate from another CA: %d, want the handshake refused", code)
	}
	if actor != "" {
		t.Errorf("the action ran for %q", actor)
	}
}
