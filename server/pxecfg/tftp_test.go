package pxecfg_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/flashline/flashline/server/pxecfg"
	"github.com/flashline/flashline/server/tftp"
)

type oneDevice struct{ mode atomic.Int32 }

func (o *oneDevice) BootMode(context.Context, net.HardwareAddr) (pxecfg.Mode, error) {
	return pxecfg.Mode(o.mode.Load()), nil
}

// The generated file reaches a real TFTP client through the TFTP server, and
// follows the device's state from one request to the next.
func TestServedOverTFTP(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	dev := &oneDevice{}
	gen, err := pxecfg.New(pxecfg.Config{ServerURL: "http://10.77.0.1:8080"}, pxecfg.Deps{State: dev})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tftp.New(tftp.Config{ListenAddr: "127.0.0.1:0", Root: t.TempDir()}, tftp.Deps{Virtual: gen.TFTPFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	url := fmt.Sprintf("tftp://127.0.0.1:%d/%s", srv.Addr().Port(), pxecfg.ConfigName(mac))
	for _, mode := range []pxecfg.Mode{pxecfg.Provision, pxecfg.LocalBoot, pxecfg.Provision} {
		dev.mode.Store(int32(mode))
		out, err := exec.Command(curl, "-sS", "--max-time", "10", url).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", url, err)
		}
		want, _ := gen.ForMAC(context.Background(), mac)
		if !bytes.Equal(out, want) {
			t.Errorf("mode %s: served\n%s\nwant\n%s", mode, out, want)
		}
		wantLine := "IPAPPEND 2"
		if mode == pxecfg.LocalBoot {
			wantLine = "LOCALBOOT 0"
		}
		if !bytes.Contains(out, []byte(wantLine)) {
			t.Errorf("mode %s: %q missing from\n%s", mode, wantLine, out)
		}
	}
}
