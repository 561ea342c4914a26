package trust_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/protocol"
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
	store  *store.Store
}

func newRealLine(t *testing.T, target, imagesURL string) realLine {
	t.Helper()
	return newRealLineRules(t, imagesURL, []config.Rule{{Name: "all", Scenario: "s.yaml", Image: "fw", Target: config.Target{Device: target}, After: protocol.AfterNone}})
}

func newRealLineRules(t *testing.T, imagesURL string, rules []config.Rule) realLine {
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
		Rules:  rules,
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
	return realLine{srv: startTLS(t, mux, tlsCfg), policy: policy, store: st}
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

// TestRelayedHelloWithOtherInventory: a relay on the line network passes this device's hello
// on with its serial, MAC and nonce but another module list, so that the genuine server picks
// another rule (another image, target and after-action). The signed job binds the inventory
// the server saw: the device refuses it, runs and writes nothing, and the genuine server
// records the refusal (the refusal carries the run secret the relay passed on).
func TestRelayedHelloWithOtherInventory(t *testing.T) {
	d := newDevice(t, nil)
	other := filepath.Join(t.TempDir(), "other-disk.img")
	line := newRealLineRules(t, "", []config.Rule{
		{Name: "lte-variant", Match: config.Match{Modules: []string{"lte"}}, Scenario: "s.yaml", Image: "fw",
			Target: config.Target{Device: other}, After: protocol.AfterPoweroff},
		{Name: "all", Scenario: "s.yaml", Image: "fw", Target: config.Target{Device: d.target}, After: protocol.AfterNone},
	})
	// The agent pins the operator key but no CA, so the plain-HTTP relay can reach it.
	d.policy = &trust.Policy{Key: line.policy.Key}
	upstream, _ := url.Parse(line.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.Transport = line.srv.Client().Transport
	var edited atomic.Int32
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == protocol.PathHello {
			var h protocol.Hello
			if err := json.NewDecoder(r.Body).Decode(&h); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			h.Inventory.Modules = append(h.Inventory.Modules, "lte")
			b, _ := json.Marshal(h)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			edited.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer relay.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.run(ctx, relay.URL)
	if err == nil || !strings.Contains(err.Error(), "refused (other-inventory)") || edited.Load() == 0 {
		t.Fatalf("run through the relay: %v, %d hellos edited; want refused (other-inventory)\n%s", err, edited.Load(), d.console.String())
	}
	if !strings.Contains(d.console.String(), "FAIL: JOB REFUSED") {
		t.Fatalf("console shows no JOB REFUSED banner:\n%s", d.console.String())
	}
	if d.scenarioRuns.Load() != 0 || d.flashCalls.Load() != 0 {
		t.Fatalf("scenario ran %d times, flash %d times: want nothing", d.scenarioRuns.Load(), d.flashCalls.Load())
	}
	d.assertUntouched(t)
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the other rule's target was written: %v", err)
	}
	devs, err := line.store.Devices(ctx, time.Time{}, 10)
	if err != nil || len(devs) != 1 || devs[0].Run == nil {
		t.Fatalf("devices: %v %+v", err, devs)
	}
	if r := devs[0].Run; r.Rule != "lte-variant" || r.Status != string(protocol.StatusError) || !strings.Contains(r.Reason, "other-inventory") || devs[0].BootMode != store.BootProvision {
		t.Fatalf("the genuine server's record: rule %q status %q reason %q boot %q; want the refusal of the lte-variant job on record",
			r.Rule, r.Status, r.Reason, devs[0].BootMode)
	}
}
