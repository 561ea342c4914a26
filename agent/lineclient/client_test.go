package lineclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "10.0.2.2:8080", "ftp://x", "http://", "://"} {
		if _, err := New(u, nil); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	c, err := New("http://10.0.2.2:8080/", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c.Resolve("/images/fw.img.zst")
	if got != "http://10.0.2.2:8080/images/fw.img.zst" {
		t.Errorf("Resolve = %q", got)
	}
	got, _ = c.Resolve("http://other/x")
	if got != "http://other/x" {
		t.Errorf("Resolve absolute = %q", got)
	}
}

func TestHelloRoundTrip(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != protocol.PathHello {
			http.Error(w, "wrong route", http.StatusNotFound)
			return
		}
		var h protocol.Hello
		if err := json.NewDecoder(r.Body).Decode(&h); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sj, _ := protocol.SignJob(protocol.Job{RunID: "run-1", Nonce: h.Nonce, Device: protocol.Identity{Serial: h.Inventory.DMI.Serial}}, nil)
		json.NewEncoder(w).Encode(protocol.HelloResponse{Job: &sj})
	}))
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	resp, err := c.Hello(context.Background(), protocol.Hello{Nonce: "abc", Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: "S1"}}})
	if err != nil {
		t.Fatal(err)
	}
	job, err := protocol.OpenJob(*resp.Job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if job.Nonce != "abc" || job.Device.Serial != "S1" {
		t.Fatalf("job = %+v", job)
	}
}

func TestPutResultRetrying(t *testing.T) {
	tests := []struct {
		name      string
		codes     []int // answers in order; the last repeats
		wantErr   bool
		wantCalls int32
	}{
		{"first try", []int{200}, false, 1},
		{"retries 503 and 429", []int{503, 429, 200}, false, 3},
		{"4xx is final", []int{400}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1)) - 1
				code := tt.codes[min(n, len(tt.codes)-1)]
				if code != 200 {
					w.WriteHeader(code)
					json.NewEncoder(w).Encode(protocol.Error{Error: "nope"})
					return
				}
				json.NewEncoder(w).Encode(protocol.ResultAck{Stored: true})
			}))
			defer srv.Close()
			c, _ := New(srv.URL, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var retries int
			ack, err := c.PutResultRetrying(ctx, protocol.Result{RunID: "r"}, func(error, time.Duration) { retries++ })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != 400 || se.Message != "nope" {
					t.Fatalf("err = %#v, want StatusError 400 nope", err)
				}
			} else if !ack.Stored {
				t.Fatal("not stored")
			}
			if calls.Load() != tt.wantCalls || retries != int(tt.wantCalls)-1 {
				t.Fatalf("calls = %d retries = %d", calls.Load(), retries)
			}
		})
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second}
	wantBase := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range wantBase {
		d := b.Next()
		lo, hi := time.Duration(float64(w*time.Second)*0.8), time.Duration(float64(w*time.Second)*1.2)
		if d < lo || d > hi {
			t.Fatalf("step %d: %v not within [%v, %v]", i, d, lo, hi)
		}
	}
	b.Reset()
	if d := b.Next(); d > 1200*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
}
