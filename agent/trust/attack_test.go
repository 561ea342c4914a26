package trust_test

// The attacks of a hostile factory network, each driven through the real agent journey
// (agent/journey.Run) with the real trust policy and line client against HTTP(S) servers on
// loopback: a rogue server with a forged job, a job signed by another key, replayed jobs, a
// scenario or image swapped after signing, and a downgrade of a TLS-pinned line API. Each
// must be refused with a clear console message, and the flash target must not be touched.
// A swapped image is the exception the design allows: its hash is only known at its end, so
// the flash pipeline (agent/flash, the real one) may have written its body, but the target's
// boot-critical first MiB must hold no image data.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/flash"
	"github.com/flashline/flashline/agent/journey"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/keys"
)

const (
	serial = "SN-1"
	mac    = "52:54:00:12:34:56"
	mib    = 1 << 20
)

var (
	scenarioYAML = []byte("name: attack-test\nsteps: []\n")
	// Three MiB so that the image has a boot-critical first MiB and a body.
	imageBytes = func() []byte {
		b := make([]byte, 3*mib)
		for i := range b {
			b[i] = byte(i*7 + i>>12)
		}
		return b
	}()
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// lineServer is a line server as the agent sees it. It signs each job with priv (nil: unsigned)
// for the nonce of the Hello it answers, unless replay is set, which it sends as recorded.
type lineServer struct {
	priv     ed25519.PrivateKey
	mutate   func(*protocol.Job)       // changes the job before signing
	replay   *protocol.SignedJob       // sent instead of a fresh job
	tamper   func(*protocol.SignedJob) // changes the job after signing
	scenario []byte
	image    []byte
	target   string

	requests atomic.Int32
	mu       sync.Mutex
	results  []protocol.Result
	issued   []protocol.SignedJob
}

func (s *lineServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathHello, func(w http.ResponseWriter, r *http.Request) {
		var h protocol.Hello
		if err := json.NewDecoder(r.Body).Decode(&h); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sj := s.replay
		if sj == nil {
			job := protocol.Job{
				RunID: "run-" + h.Nonce[:8], Nonce: h.Nonce,
				IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
				Device:   protocol.Identity{Serial: h.Inventory.DMI.Serial, MAC: h.BootMAC},
				Scenario: protocol.Artifact{URL: "/scenarios/s.yaml", SHA256: sum(scenarioYAML), Size: int64(len(scenarioYAML))},
				Image:    protocol.Artifact{URL: "/images/fw.img", SHA256: sum(imageBytes), Size: int64(len(imageBytes))},
				Target:   protocol.Target{Device: s.target},
				After:    protocol.AfterNone,
			}
			job.InventorySHA256, _ = protocol.InventoryHash(h.Inventory)
			if s.mutate != nil {
				s.mutate(&job)
			}
			signed, err := protocol.SignJob(job, s.priv)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			if s.tamper != nil {
				s.tamper(&signed)
			}
			sj = &signed
		}
		s.mu.Lock()
		s.issued = append(s.issued, *sj)
		s.mu.Unlock()
		json.NewEncoder(w).Encode(protocol.HelloResponse{Job: sj})
	})
	mux.HandleFunc("POST /api/v1/runs/{run}/events", func(w http.ResponseWriter, r *http.Request) {
		var b protocol.EventBatch
		json.NewDecoder(r.Body).Decode(&b)
		var last int64
		for _, e := range b.Events {
			last = max(last, e.Seq)
		}
		json.NewEncoder(w).Encode(protocol.EventAck{Seq: last})
	})
	mux.HandleFunc("PUT /api/v1/runs/{run}/result", func(w http.ResponseWriter, r *http.Request) {
		var res protocol.Result
		json.NewDecoder(r.Body).Decode(&res)
		s.mu.Lock()
		s.results = append(s.results, res)
		s.mu.Unlock()
		json.NewEncoder(w).Encode(protocol.ResultAck{Stored: true})
	})
	mux.HandleFunc("GET /scenarios/s.yaml", func(w http.ResponseWriter, r *http.Request) { w.Write(s.scenario) })
	mux.HandleFunc("GET /images/fw.img", func(w http.ResponseWriter, r *http.Request) { w.Write(s.image) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		mux.ServeHTTP(w, r)
	})
}

func (s *lineServer) lastResult() (protocol.Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.results) == 0 {
		return protocol.Result{}, false
	}
	return s.results[len(s.results)-1], true
}

// syncBuffer is a console sink the journey's goroutines may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// device is one agent: its trust policy as built into its initramfs, and its disk.
type device struct {
	policy  *trust.Policy
	target  string
	console syncBuffer

	scenarioRuns atomic.Int32
	flashCalls   atomic.Int32
}

const targetFill = 0xEE

func newDevice(t *testing.T, p *trust.Policy) *device {
	t.Helper()
	target := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(target, bytes.Repeat([]byte{targetFill}, 4*mib), 0o600); err != nil {
		t.Fatal(err)
	}
	return &device{policy: p, target: target}
}

// run is the agent's journey against the server at url, wired as agent/journey/machine wires
// it: the pinned API client for the line client, the policy's VerifyJob, and a flash step
// that downloads with the policy's download client.
func (d *device) run(ctx context.Context, url string) (journey.Outcome, error) {
	return d.runChecked(ctx, url, true)
}

// runChecked is run with the command-line URL check on or (to prove the pinned transport holds
// on its own) off.
func (d *device) runChecked(ctx context.Context, url string, checkURL bool) (journey.Outcome, error) {
	if checkURL {
		if err := d.policy.CheckAPIURL(url); err != nil {
			console.New(&d.console).Failf("%v", err)
			return journey.Outcome{}, err
		}
	}
	api, err := lineclient.New(url, d.policy.APIClient(5*time.Second))
	if err != nil {
		return journey.Outcome{}, err
	}
	env := journey.Env{
		Console: console.New(&d.console), AgentVersion: "attack-test", BootMAC: mac,
		HelloMin: 20 * time.Millisecond, HelloMax: 100 * time.Millisecond, ReportEvery: 20 * time.Millisecond,
	}
	deps := journey.Deps{
		Inventory: func(ctx context.Context) (protocol.Inventory, error) {
			return protocol.Inventory{DMI: protocol.DMI{Serial: serial, Product: "GM-Box"}}, nil
		},
		VerifyJob: func(sj protocol.SignedJob, want trust.Expect) (protocol.Job, error) {
			return d.policy.VerifyJob(&sj, want)
		},
		RunScenario: func(ctx context.Context, scenario []byte, inv protocol.Inventory, emit func(protocol.Event)) ([]protocol.StepResult, error) {
			d.scenarioRuns.Add(1)
			if !bytes.Equal(scenario, scenarioYAML) {
				return nil, errors.New("the scenario runner was handed bytes the operator did not sign")
			}
			return []protocol.StepResult{{Name: "noop", Check: "noop", Status: protocol.StatusPass, Attempts: 1}}, nil
		},
		// As agent/journey/machine wires it: the real pipeline, downloading with the policy's
		// download client.
		Flash: func(ctx context.Context, req journey.FlashRequest) (protocol.FlashResult, error) {
			d.flashCalls.Add(1)
			res, err := flash.Write(ctx, flash.Options{
				Source: req.Source, Target: req.Target, SHA256: req.SHA256, Size: req.Size,
				HTTPClient: d.policy.DownloadClient(30 * time.Second), NoDirect: true,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			return protocol.FlashResult{Target: req.Target, Bytes: res.Bytes, SHA256: res.SHA256, Format: res.Format}, err
		},
		After: func(ctx context.Context, action string) error { return nil },
	}
	return journey.Run(ctx, env, api, deps)
}

// assertUntouched fails when the device's target is not exactly what was there before.
func (d *device) assertUntouched(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(d.target)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*mib {
		t.Fatalf("target size changed to %d", len(b))
	}
	for i, c := range b {
		if c != targetFill {
			t.Fatalf("target byte %d changed to %#x", i, c)
		}
	}
}

// assertNotBootable fails when the target's first MiB (partition table, boot code) holds
// anything from an image: after a refused image it must be the old content or wiped.
func (d *device) assertNotBootable(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(d.target)
	if err != nil {
		t.Fatal(err)
	}
	head := b[:mib]
	if !bytes.Equal(head, bytes.Repeat([]byte{targetFill}, mib)) && !bytes.Equal(head, make([]byte, mib)) {
		t.Fatal("the target's first MiB holds image data: a refused image could boot")
	}
}

// newLinePKI runs `flashline-server tls-init`'s code and returns the agent's pinned policy
// (with key) and the server's TLS config.
func newLinePKI(t *testing.T, pub ed25519.PublicKey) (*trust.Policy, *tls.Config) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	f, err := keys.InitTLS(dir, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := keys.ServerTLSConfig(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	p, err := trust.LoadFiles("", f.CACert)
	if err != nil {
		t.Fatal(err)
	}
	p.Key = pub
	return p, cfg
}

func startTLS(t *testing.T, h http.Handler, cfg *tls.Config) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	// The refused handshakes are the point of these tests, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestAttacks(t *testing.T) {
	// The operator's key, generated and loaded as `flashline-server keygen` does.
	kp, err := keys.Generate(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	opPriv, err := keys.LoadPrivateKey(kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	opPub, err := keys.LoadPublicKey(kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	_, roguePriv, _ := ed25519.GenerateKey(nil)

	// Jobs recorded from the genuine server earlier: one for another device, one for this
	// device's previous boot.
	record := func(serial, nonce string) *protocol.SignedJob {
		sj, err := protocol.SignJob(protocol.Job{
			RunID: "run-recorded-" + serial, Nonce: nonce, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
			Device:   protocol.Identity{Serial: serial, MAC: mac},
			Scenario: protocol.Artifact{URL: "/scenarios/s.yaml", SHA256: sum(scenarioYAML)},
			Image:    protocol.Artifact{URL: "/images/fw.img", SHA256: sum(imageBytes), Size: int64(len(imageBytes))},
			After:    protocol.AfterNone,
		}, opPriv)
		if err != nil {
			t.Fatal(err)
		}
		return &sj
	}
	otherSerial := record("SN-2", "nonce-of-SN-2s-boot")
	oldBoot := record(serial, "nonce-of-a-previous-boot")

	swappedImage := bytes.Clone(imageBytes)
	swappedImage[len(swappedImage)-1] ^= 0xFF // the attacker changed the end, after the first MiB
	swappedFirstMiB := bytes.Clone(imageBytes)
	copy(swappedFirstMiB, "EVIL BOOT SECTOR")

	keyed := &trust.Policy{Key: opPub}

	tests := []struct {
		name   string
		srv    func(d *device) *lineServer
		reason trust.Reason
		// untouched: the whole target must be as it was. Otherwise (an image swapped after
		// signing, found out while it streams) its first MiB must hold no image data.
		untouched bool
		// ran: the genuine scenario ran and the flash step started (the image's bytes are
		// only checked while it streams).
		ran      bool
		reported bool // the refusal reaches the server it came from as an error result
		// alsoOK is the wording of the journey (scenario hash) or the flash pipeline (image
		// hash and size) for a refusal they check themselves, until they report it through
		// trust's reasons.
		alsoOK string
	}{
		{
			name:   "rogue server, unsigned forged job",
			srv:    func(d *device) *lineServer { return &lineServer{priv: nil} },
			reason: trust.ReasonUnsigned, untouched: true, reported: true,
		},
		{
			name:   "rogue server, job signed by another key",
			srv:    func(d *device) *lineServer { return &lineServer{priv: roguePriv} },
			reason: trust.ReasonWrongKey, untouched: true, reported: true,
		},
		{
			name: "rogue server, genuine signature on an edited job",
			srv: func(d *device) *lineServer {
				return &lineServer{priv: opPriv, tamper: func(sj *protocol.SignedJob) {
					sj.Job = bytes.Replace(sj.Job, []byte(sum(imageBytes)), []byte(sum(swappedImage)), 1)
				}}
			},
			reason: trust.ReasonBadSignature, untouched: true, reported: true,
		},
		{
			name:   "replayed job for another serial",
			srv:    func(d *device) *lineServer { return &lineServer{replay: otherSerial} },
			reason: trust.ReasonOtherDevice, untouched: true, reported: true,
		},
		{
			name:   "replayed job from a previous boot of this device",
			srv:    func(d *device) *lineServer { return &lineServer{replay: oldBoot} },
			reason: trust.ReasonReplayed, untouched: true, reported: true,
		},
		{
			name: "expired job",
			srv: func(d *device) *lineServer {
				return &lineServer{priv: opPriv, mutate: func(j *protocol.Job) { j.ExpiresAt = time.Now().Add(-time.Hour) }}
			},
			reason: trust.ReasonExpired, untouched: true, reported: true,
		},
		{
			// The genuine server signed a job for the inventory a relay sent in this device's
			// name (same serial, MAC and nonce, another module list).
			name: "job issued for a relayed hello with another inventory",
			srv: func(d *device) *lineServer {
				return &lineServer{priv: opPriv, mutate: func(j *protocol.Job) {
					j.InventorySHA256, _ = protocol.InventoryHash(protocol.Inventory{DMI: protocol.DMI{Serial: serial}, Modules: []string{"wifi", "lte"}})
				}}
			},
			reason: trust.ReasonOtherInv, untouched: true, reported: true,
		},
		{
			name: "signed job that binds no inventory",
			srv: func(d *device) *lineServer {
				return &lineServer{priv: opPriv, mutate: func(j *protocol.Job) { j.InventorySHA256 = "" }}
			},
			reason: trust.ReasonOtherInv, untouched: true, reported: true,
		},
		{
			name: "scenario swapped after signing",
			srv: func(d *device) *lineServer {
				return &lineServer{priv: opPriv, scenario: []byte("name: evil\nsteps: []\n")}
			},
			reason: trust.ReasonHashMismatch, untouched: true, reported: true,
			alsoOK: "does not match the signed job",
		},
		{
			name:   "image swapped after signing (body)",
			srv:    func(d *device) *lineServer { return &lineServer{priv: opPriv, image: swappedImage} },
			reason: trust.ReasonHashMismatch, untouched: false, ran: true, reported: true,
			alsoOK: "flash: sha256 mismatch",
		},
		{
			name:   "image swapped after signing (boot sector)",
			srv:    func(d *device) *lineServer { return &lineServer{priv: opPriv, image: swappedFirstMiB} },
			reason: trust.ReasonHashMismatch, untouched: false, ran: true, reported: true,
			alsoOK: "flash: sha256 mismatch",
		},
		{
			name: "image swapped for a longer one",
			srv: func(d *device) *lineServer {
				return &lineServer{priv: opPriv, image: append(bytes.Clone(imageBytes), make([]byte, mib)...)}
			},
			// The pipeline stops the stream at the signed size.
			reason: trust.ReasonHashMismatch, untouched: false, ran: true, reported: true,
			alsoOK: "image is longer than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDevice(t, keyed)
			ls := tt.srv(d)
			ls.target = d.target
			if ls.scenario == nil {
				ls.scenario = scenarioYAML
			}
			if ls.image == nil {
				ls.image = imageBytes
			}
			srv := httptest.NewServer(ls.handler())
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			out, err := d.run(ctx, srv.URL)
			con := d.console.String()
			if testing.Verbose() {
				t.Logf("console:\n%s", con)
			}
			refusedReason := ""
			if err != nil {
				refusedReason = err.Error()
			} else {
				refusedReason = out.Result.Reason
				if out.Result.Status == protocol.StatusPass || out.Flashed {
					t.Fatalf("attack accepted: %+v", out.Result)
				}
			}
			want := fmt.Sprintf("refused (%s)", tt.reason)
			if tt.alsoOK != "" && strings.Contains(refusedReason, tt.alsoOK) {
				want = tt.alsoOK
			}
			if !strings.Contains(refusedReason, want) {
				t.Fatalf("outcome %q (err %v), want %q", refusedReason, err, want)
			}
			if !strings.Contains(con, want) {
				t.Fatalf("console does not say %q:\n%s", want, con)
			}
			// The image's hash can only be checked as it streams, after the (genuine) scenario
			// ran; every other attack must stop before anything runs.
			if !tt.ran {
				if n := d.scenarioRuns.Load(); n != 0 {
					t.Fatalf("scenario ran %d times", n)
				}
				if d.flashCalls.Load() != 0 {
					t.Fatal("the flash step was reached")
				}
			}
			if tt.untouched {
				d.assertUntouched(t)
			} else {
				d.assertNotBootable(t)
			}
			if tt.reported {
				res, ok := ls.lastResult()
				if !ok || res.Status == protocol.StatusPass || !strings.Contains(res.Reason, want) {
					t.Fatalf("server got result %+v (ok=%v), want a refusal %q", res, ok, want)
				}
			}
		})
	}
}

// TestGenuineLine is the control: the same wiring against the genuine server, over plain HTTP
// and over pinned HTTPS, passes and flashes exactly the signed image.
func TestGenuineLine(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	pinned, tlsCfg := newLinePKI(t, pub)
	for _, tc := range []struct {
		name   string
		policy *trust.Policy
		start  func(h http.Handler) *httptest.Server
	}{
		{"http with key", &trust.Policy{Key: pub}, httptest.NewServer},
		{"pinned https with key", pinned, func(h http.Handler) *httptest.Server { return startTLS(t, h, tlsCfg) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, tc.policy)
			ls := &lineServer{priv: priv, scenario: scenarioYAML, image: imageBytes, target: d.target}
			srv := tc.start(ls.handler())
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := d.run(ctx, srv.URL)
			if err != nil || out.Result.Status != protocol.StatusPass || !out.Flashed {
				t.Fatalf("genuine run: %v %+v\n%s", err, out.Result, d.console.String())
			}
			got, _ := os.ReadFile(d.target)
			if !bytes.Equal(got[:len(imageBytes)], imageBytes) {
				t.Fatal("target does not hold the signed image")
			}
		})
	}
}

// TestDowngradeAndImpostor: an agent that pins the line's CA meets a plain-HTTP server (told by
// a rogue DHCP/boot server, or the line server replaced), an HTTPS server with a certificate
// from another CA, and an HTTPS server redirecting to plain HTTP. No request of the journey may
// reach them, nothing is written, and the console says why.
func TestDowngradeAndImpostor(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	pinned, lineTLS := newLinePKI(t, pub)
	_, rogueTLS := newLinePKI(t, pub) // a CA the agent does not pin

	rogue := &lineServer{priv: priv, scenario: scenarioYAML, image: imageBytes}
	plain := httptest.NewServer(rogue.handler())
	defer plain.Close()
	impostor := startTLS(t, rogue.handler(), rogueTLS)
	// The genuine line server's certificate, but it (or something in front of it) redirects the
	// API to plain HTTP.
	redirect := startTLS(t, http.RedirectHandler(plain.URL+protocol.PathHello, http.StatusTemporaryRedirect), lineTLS)

	tests := []struct {
		name   string
		url    string
		check  bool // the command-line check (CheckAPIURL) is part of the wiring under test
		reason trust.Reason
	}{
		{"plain http URL refused before any request", plain.URL, true, trust.ReasonDowngrade},
		{"plain http even without the URL check", plain.URL, false, trust.ReasonDowngrade},
		{"https with a foreign certificate", impostor.URL, false, trust.ReasonUntrusted},
		{"pinned https redirecting to plain http", redirect.URL, true, trust.ReasonDowngrade},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rogue.requests.Load()
			d := newDevice(t, pinned)
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			// Without the URL check the journey goes straight to its hello, as if the wiring
			// forgot the check: the pinned transport alone must hold. The journey keeps
			// retrying its hello until ctx ends.
			_, err := d.runChecked(ctx, tt.url, tt.check)
			want := fmt.Sprintf("refused (%s)", tt.reason)
			con := d.console.String()
			if err == nil || !strings.Contains(con, want) {
				t.Fatalf("err %v; console does not say %q:\n%s", err, want, con)
			}
			if n := rogue.requests.Load() - before; n != 0 {
				t.Fatalf("%d requests reached the server", n)
			}
			if d.scenarioRuns.Load() != 0 || d.flashCalls.Load() != 0 {
				t.Fatal("scenario or flash reached")
			}
			d.assertUntouched(t)
		})
	}
}
