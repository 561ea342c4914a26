package trust_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/protocol"
	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/server/api"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/keys"
	"github.com/flashline/flashline/server/store"
)

// realLine is the reference line server's own API, job issuer and store, set up as an operator
// would: a key from keygen, HTTPS from tls-init, the public key and CA given to the agent.
type realLine struct {
	srv    *httptest.Server
	policy *trust.Policy
}

func newRealLine(t *testing.T, target, imagesURL string) realLine {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	kp, err := keys.Generate(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := keys.LoadPrivateKey(kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := keys.InitTLS(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := keys.ServerTLSConfig(tf.ServerCert, tf.ServerKey)
	if err != nil {
		t.Fatal(err)
	}

	imagesDir, scenariosDir := filepath.Join(dir, "images"), filepath.Join(dir, "scenarios")
	os.MkdirAll(imagesDir, 0o755)
	os.MkdirAll(scenariosDir, 0o755)
	os.WriteFile(filepath.Join(imagesDir, "fw.img"), imageBytes, 0o644)
	os.WriteFile(filepath.Join(scenariosDir, "s.yaml"), scenarioYAML, 0o644)
	images, err := jobs.LoadImages(ctx, []config.Image{{Name: "fw", File: "fw.img"}}, jobs.ImageOptions{Dir: imagesDir, Compute: true})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := jobs.New(jobs.Options{
		Rules:  []config.Rule{{Name: "all", Scenario: "s.yaml", Image: "fw", Target: config.Target{Device: target}, After: protocol.AfterNone}},
		Images: images, ScenariosDir: scenariosDir, ImagesURL: imagesURL, Key: priv,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, err := api.New(api.Options{Store: st, Issuer: issuer, ImagesDir: imagesDir, ScenariosDir: scenariosDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	mux := http.NewServeMux()
	a.Register(mux)

	policy, err := trust.LoadFiles(kp.Public, tf.CACert)
	if err != nil {
		t.Fatal(err)
	}
	return realLine{srv: startTLS(t, mux, tlsCfg), policy: policy}
}

// TestRealLineServer: jobs signed by the reference server with a keygen key verify on an agent
// built with its public key and pinned CA, and the device is flashed; with the images on a
// plain-HTTP mirror that was tampered with, the same signed job protects the device.
func TestRealLineServer(t *testing.T) {
	t.Run("genuine", func(t *testing.T) {
		d := newDevice(t, nil)
		line := newRealLine(t, d.target, "")
		d.policy = line.policy
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := d.run(ctx, line.srv.URL)
		if err != nil || out.Result.Status != protocol.StatusPass || !out.Flashed {
			t.Fatalf("run: %v %+v\n%s", err, out.Result, d.console.String())
		}
		got, _ := os.ReadFile(d.target)
		if !bytes.Equal(got[:len(imageBytes)], imageBytes) {
			t.Fatal("the target does not hold the image")
		}
	})
	t.Run("tampered plain-HTTP image mirror", func(t *testing.T) {
		swapped := bytes.Clone(imageBytes)
		copy(swapped[2*mib:], "a backdoor")
		mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(swapped) }))
		defer mirror.Close()
		d := newDevice(t, nil)
		line := newRealLine(t, d.target, mirror.URL+"/images")
		d.policy = line.policy
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := d.run(ctx, line.srv.URL)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, d.console.String())
		}
		if out.Flashed || out.Result.Status == protocol.StatusPass || !strings.Contains(out.Result.Reason, "sha256 mismatch") {
			t.Fatalf("tampered image accepted or wrong reason: %+v\n%s", out.Result, d.console.String())
		}
		d.assertNotBootable(t)
	})
}
