package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/protocol"
)

type fakeServer struct {
	answers []func() (*protocol.HelloResponse, error)
	got     []protocol.Hello
}

func (f *fakeServer) Hello(ctx context.Context, h protocol.Hello) (*protocol.HelloResponse, error) {
	f.got = append(f.got, h)
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	return a()
}

type doubling struct{ n int }

func (d *doubling) Next() time.Duration {
	w := time.Second << d.n
	if w > 4*time.Second {
		return 4 * time.Second
	}
	d.n++
	return w
}
func (d *doubling) Reset() { d.n = 0 }

func TestAwaitJob(t *testing.T) {
	refused := func() (*protocol.HelloResponse, error) {
		return nil, errors.New("dial tcp 10.0.2.2:8080: connect: connection refused")
	}
	noJob := func() (*protocol.HelloResponse, error) {
		return &protocol.HelloResponse{Message: "no rule matches product GM-Box 3", RetryAfter: 7}, nil
	}
	job := func() (*protocol.HelloResponse, error) {
		return &protocol.HelloResponse{Job: &protocol.SignedJob{Job: []byte(`{"run_id":"r1"}`)}}, nil
	}
	var out bytes.Buffer
	env := &Env{Server: "http://10.0.2.2:8080", Console: console.New(&out), Version: "test",
		NIC: NIC{Name: "eth0", MAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, IP: net.IPNet{IP: net.IPv4(10, 0, 2, 15)}}}
	srv := &fakeServer{answers: []func() (*protocol.HelloResponse, error){refused, refused, refused, refused, noJob, refused, job}}
	var waits []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	h := env.Hello()
	resp, err := AwaitJob(context.Background(), env, srv, h, &doubling{}, sleep)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Job.Job) != `{"run_id":"r1"}` {
		t.Errorf("job %q", resp.Job.Job)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 7 * time.Second, time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	for _, w := range []string{
		"WARN no answer from http://10.0.2.2:8080: dial tcp 10.0.2.2:8080: connect: connection refused; retrying in 1s",
		"retrying in 4s",
		"http://10.0.2.2:8080 says: no rule matches product GM-Box 3; asking again in 7s",
		"OK   job received from http://10.0.2.2:8080",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("console lacks %q:\n%s", w, out.String())
		}
	}
	g := srv.got[0]
	if g.BootMAC != "52:54:00:12:34:56" || g.IP != "10.0.2.15" || g.AgentVersion != "test" || len(g.Nonce) != 32 {
		t.Errorf("hello %+v", g)
	}
}

func TestAwaitJobStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	env := &Env{Server: "http://x", Console: console.Discard()}
	srv := &fakeServer{answers: []func() (*protocol.HelloResponse, error){func() (*protocol.HelloResponse, error) {
		cancel()
		return nil, context.Canceled
	}}}
	_, err := AwaitJob(ctx, env, srv, protocol.Hello{}, &doubling{}, func(context.Context, time.Duration) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestBootHostMode(t *testing.T) {
	var out bytes.Buffer
	no := false
	env, err := Boot(context.Background(), Options{Console: console.New(&out), Device: &no,
		Cmdline: "BOOTIF=01-52-54-00-12-34-56 flashline.debug", Server: "http://127.0.0.1:9/"})
	if err != nil {
		t.Fatal(err)
	}
	if env.Server != "http://127.0.0.1:9" || !env.Params.Debug || env.Params.BootIF.String() != "52:54:00:12:34:56" {
		t.Errorf("env %+v", env)
	}
	if !strings.Contains(out.String(), "host mode") {
		t.Errorf("console:\n%s", out.String())
	}
	if _, err := Boot(context.Background(), Options{Console: console.Discard(), Device: &no, Cmdline: "x", Server: "ftp://x"}); err == nil {
		t.Error("a bad --server was accepted")
	}
}
