package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside a TLS directory.
const (
	CACertFile     = "ca.pem"     // pin this in the initramfs (make CA=...)
	CAKeyFile      = "ca.key"     // stays here; only needed to issue a new server certificate
	ServerCertFile = "server.pem" // the server's certificate followed by the CA's
	ServerKeyFile  = "server.key"
)

// notBefore is the start of every certificate's validity. Factory-fresh boards often boot with
// their RTC at its reset value years in the past; a certificate "not yet valid" to such a board
// would refuse a perfectly good line server. What protects the line is the pinned CA, not the
// device's idea of the date.
var notBefore = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// TLSFiles names the files InitTLS wrote or reused.
type TLSFiles struct {
	CACert, CAKey, ServerCert, ServerKey string
	// NewCA is false when an existing CA in the directory issued the new server certificate.
	NewCA bool
	Hosts []string
}

// InitTLS writes a server certificate for hosts (DNS names or IP addresses the agents use in
// flashline.server=) into dir, issued by the CA in dir, which it creates first if there is none.
// It never overwrites a certificate or key: move server.pem and server.key away to re-issue
// (e.g. after the line server's address changed) and keep the CA, which agents pin.
func InitTLS(dir string, hosts []string, now time.Time) (TLSFiles, error) {
	if len(hosts) == 0 {
		return TLSFiles{}, errors.New("no host names or addresses for the server certificate")
	}
	if err := secretDir(dir); err != nil {
		return TLSFiles{}, err
	}
	f := TLSFiles{
		CACert: filepath.Join(dir, CACertFile), CAKey: filepath.Join(dir, CAKeyFile),
		ServerCert: filepath.Join(dir, ServerCertFile), ServerKey: filepath.Join(dir, ServerKeyFile),
		Hosts: hosts,
	}
	if err := refuseExisting("to issue a new server certificate from the same CA, move server.pem and server.key away", f.ServerCert, f.ServerKey); err != nil {
		return TLSFiles{}, err
	}
	ca, caKey, err := loadCA(f.CACert, f.CAKey)
	if errors.Is(err, fs.ErrNotExist) {
		if err := refuseExisting("agents pin this CA", f.CACert, f.CAKey); err != nil {
			return TLSFiles{}, fmt.Errorf("half a CA in %s: %w", dir, err)
		}
		ca, caKey, err = newCA(now)
		if err != nil {
			return TLSFiles{}, err
		}
		if err := writeKey(f.CAKey, caKey); err != nil {
			return TLSFiles{}, err
		}
		if err := writeNew(f.CACert, pemCert(ca.Raw), 0o644); err != nil {
			return TLSFiles{}, err
		}
		f.NewCA = true
	} else if err != nil {
		return TLSFiles{}, err
	}
	leaf, leafKey, err := newServerCert(ca, caKey, hosts, now)
	if err != nil {
		return TLSFiles{}, err
	}
	if err := writeKey(f.ServerKey, leafKey); err != nil {
		return TLSFiles{}, err
	}
	chain := append(pemCert(leaf), pemCert(ca.Raw)...)
	if err := writeNew(f.ServerCert, chain, 0o644); err != nil {
		os.Remove(f.ServerKey)
		return TLSFiles{}, err
	}
	return f, nil
}

// ServerTLSConfig loads the server's certificate and key for http.Server, refusing a key file
// that group or others can read.
func ServerTLSConfig(certPath, keyPath string) (*tls.Config, error) {
	keyPEM, err := readSecret(keyPath)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read server certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server certificate %s with key %s: %w", certPath, keyPath, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// DefaultHosts are the names and addresses of this host: what agents on the line are likely to
// be told to use.
func DefaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append(hosts, h)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
			hosts = append(hosts, ipn.IP.String())
		}
	}
	return hosts
}

func newCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Flashline line"}, CommonName: "Flashline line CA " + now.UTC().Format("2006-01-02")},
		NotBefore:             notBefore,
		NotAfter:              now.AddDate(30, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func newServerCert(ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) ([]byte, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Flashline line"}, CommonName: hosts[0]},
		NotBefore:    notBefore,
		NotAfter:     now.AddDate(20, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create server certificate: %w", err)
	}
	return der, key, nil
}

func loadCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no PEM CERTIFICATE", certPath)
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	keyPEM, err := readSecret(keyPath)
	if err != nil {
		return nil, nil, err
	}
	k, err := parsePrivate(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %T cannot sign", keyPath, k)
	}
	return ca, signer, nil
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}
