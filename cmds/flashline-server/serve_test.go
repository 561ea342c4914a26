package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/keys"
)

func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// TestServeWiring runs the binary with HTTP (signed jobs, dashboard off) and TFTP on loopback:
// the pxelinux.cfg a device gets over TFTP follows its results in the database, and a reset
// from the command line brings the provisioning entry back.
func TestServeWiring(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl (the TFTP client here) is not installed")
	}
	bin := buildServer(t)
	addr := freePort(t)
	tftpAddr := freeUDPPort(t)
	dir, cfg := lineDir(t, addr)
	kp, err := keys.Generate(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.LoadPublicKey(kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	for _, f := range []string{"vmlinuz", "pxelinux.0", "ldlinux.c32"} {
		os.WriteFile(filepath.Join(dir, "tftp", f), []byte("boot file "+f), 0o644)
	}
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data_dir: data
key_file: keys/operator.key
images_dir: images
scenarios_dir: scenarios
http: {enabled: true, listen: %q, public_url: "http://%s", dashboard: false, boot_dir: tftp}
tftp: {enabled: true, listen: %q, root: tftp, pxelinux: {serial_port: "0 115200", http_base: "http://%s/boot/"}}
images: [{name: os, file: os.img}]
rules: [{name: all, scenario: box.yaml, image: os}]
`, addr, addr, tftpAddr, addr)), 0o644)
	srv := startServer(t, bin, cfg, addr)
	defer func() { srv.cmd.Process.Signal(syscall.SIGTERM); srv.cmd.Wait() }()

	mac := "52:54:00:ab:cd:01"
	pxe := func() string {
		t.Helper()
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "tftp://"+tftpAddr+"/pxelinux.cfg/01-"+strings.ReplaceAll(mac, ":", "-")).Output()
		if err != nil {
			t.Fatalf("tftp: %v\n%s", err, srv.log)
		}
		return string(out)
	}
	if got := pxe(); !strings.Contains(got, "flashline.server=http://"+addr) || strings.Contains(got, "LOCALBOOT") ||
		!strings.Contains(got, "KERNEL http://"+addr+"/boot/vmlinuz") {
		t.Fatalf("a new device does not get the provisioning entry:\n%s", got)
	}

	c, _ := lineclient.New("http://"+addr, nil)
	ctx := context.Background()
	resp, err := c.Hello(ctx, protocol.Hello{BootMAC: mac, Nonce: "n1", Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: "W1"}}})
	if err != nil {
		t.Fatal(err)
	}
	job, err := protocol.OpenJob(*resp.Job, pub)
	if err != nil {
		t.Fatalf("the job is not signed with the configured key: %v", err)
	}
	if _, err := c.PutResult(ctx, protocol.Result{RunID: job.RunID, Serial: "W1", MAC: mac, Status: protocol.StatusPass, Secret: resp.RunSecret}); err != nil {
		t.Fatal(err)
	}
	if got := pxe(); !strings.Contains(got, "LOCALBOOT 0") {
		t.Fatalf("a passed device does not get LOCALBOOT:\n%s", got)
	}
	if out, err := exec.Command(bin, "reset", "-config", cfg, "-mac", mac).CombinedOutput(); err != nil {
		t.Fatalf("reset: %v %s", err, out)
	}
	if got := pxe(); strings.Contains(got, "LOCALBOOT") {
		t.Fatalf("a reset device still gets LOCALBOOT:\n%s", got)
	}

	// The dashboard is switched off; metrics are on.
	for path, want := range map[string]int{"/": 404, "/dashboard/api/devices": 404, "/metrics": 200, "/images/os.img": 200, "/boot/vmlinuz": 200} {
		r, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, r.StatusCode, want)
		}
	}
}

// TestServeTLS: with tls_cert and tls_key the API is HTTPS, and the agent's client reaches it
// when it trusts the line's CA (as the initramfs pins it).
func TestServeTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	addr := freePort(t)
	dir, cfg := lineDir(t, addr)
	tf, err := keys.InitTLS(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "http: {enabled: true,",
		fmt.Sprintf("http: {tls_cert: %q, tls_key: %q, enabled: true,", tf.ServerCert, tf.ServerKey), 1)), 0o644)
	caPEM, _ := os.ReadFile(tf.CACert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	srv := startServerAt(t, bin, cfg, "https://"+addr+"/metrics", hc)
	defer func() { srv.cmd.Process.Signal(syscall.SIGTERM); srv.cmd.Wait() }()

	c, _ := lineclient.New("https://"+addr, hc)
	resp, err := c.Hello(context.Background(), protocol.Hello{BootMAC: "52:54:00:00:00:99", Nonce: "n"})
	if err != nil || resp.Job == nil {
		t.Fatalf("hello over https: %+v %v", resp, err)
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		// Go's TLS server answers plain HTTP with a 400; what matters is that no API is served.
		r, _ := http.Get("http://" + addr + "/api/v1/hello")
		if r != nil && r.StatusCode == 200 {
			t.Fatal("plain HTTP served beside HTTPS")
		}
	}
}
