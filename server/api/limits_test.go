package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

// post sends a hello body and returns the status and the answer's error message.
func postHello(t *testing.T, e *env, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+protocol.PathHello, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pe protocol.Error
	json.NewDecoder(resp.Body).Decode(&pe)
	return resp.StatusCode, pe.Error
}

// The attack of issue 13: 20 hellos with 3.9 MB inventories grew the database by 88 MB. Every
// list and string of a hello is now capped, and so is its body, with a message saying which.
func TestHelloInventoryBounds(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		edit func(h *protocol.Hello)
		code int
		want string
	}{
		{"too many disks", func(h *protocol.Hello) { h.Inventory.Disks = make([]protocol.Disk, 129) }, 400, "inventory.disks: 129 entries, at most 128 (too many disks)"},
		{"too many NICs", func(h *protocol.Hello) { h.Inventory.NICs = make([]protocol.NIC, 500) }, 400, "too many nics"},
		{"too many modules", func(h *protocol.Hello) { h.Inventory.Modules = make([]string, 129) }, 400, "too many modules"},
		{"too many timings", func(h *protocol.Hello) {
			for i := range 200 {
				h.Timings = append(h.Timings, protocol.PhaseTiming{Phase: fmt.Sprint("p", i), DurationMS: 1})
			}
		}, 400, "timings: 201 entries"},
		{"too many input keys", func(h *protocol.Hello) {
			h.Inventory.Inputs = []protocol.InputDevice{{Name: "kbd", Keys: make([]string, 1000)}}
		}, 400, "inventory.inputs[0].keys"},
		{"over-long USB product", func(h *protocol.Hello) { h.Inventory.USB = []protocol.USBDevice{{VID: "1d6b", Product: long}} }, 400, "inventory.usb[0].product: 300 bytes, at most 256"},
		{"over-long disk model", func(h *protocol.Hello) { h.Inventory.Disks = []protocol.Disk{{Name: "vda", Model: long}} }, 400, "inventory.disks[0].model"},
		{"body over the hello limit", func(h *protocol.Hello) {
			// Strings within the cap, lists within the cap, but 128 x 128 x 40 bytes in all.
			for range 128 {
				h.Inventory.Inputs = append(h.Inventory.Inputs, protocol.InputDevice{Name: "kbd", Keys: make([]string, 128)})
				for k := range h.Inventory.Inputs[len(h.Inventory.Inputs)-1].Keys {
					h.Inventory.Inputs[len(h.Inventory.Inputs)-1].Keys[k] = strings.Repeat("K", 40)
				}
			}
		}, 413, "over the limit of 262144"},
		{"a real inventory passes", func(h *protocol.Hello) {
			h.Inventory.Disks = []protocol.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 1 << 30}}
			h.Inventory.NICs = []protocol.NIC{{Name: "eth0", MAC: "52:54:00:00:00:09"}}
			h.Inventory.Modules = []string{"wifi", "lte"}
		}, 200, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hello(fmt.Sprintf("52:54:00:00:01:%02x", i))
			tc.edit(&h)
			b, _ := json.Marshal(h)
			code, msg := postHello(t, e, b)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Errorf("got %d %q, want %d containing %q", code, msg, tc.code, tc.want)
			}
		})
	}
}

// The attack: a body sent slowly was answered 400 "malformed JSON", blaming the device's
// JSON for the network's (or an attacker's) pace. It is a 408 now.
func TestSlowBodyIs408(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.BodyTimeout = 500 * time.Millisecond })
	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"boot_mac\":", protocol.PathHello)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v\n%s", err, e.logs.String())
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "not received within 500ms") {
		t.Errorf("stalled body: %d %s, want 408", resp.StatusCode, body)
	}
}

// The attack: GET /images/<a FIFO> hung a goroutine (and a connection) per request in open(2).
func TestNonRegularFilesNotServed(t *testing.T) {
	var dir string
	e := newEnv(t, func(o *Options) { dir = o.ImagesDir })
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.img"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 3 * time.Second}
	for _, p := range []string{"/images/pipe.img", "/images/sub"} {
		resp, err := client.Get(e.srv.URL + p)
		if err != nil {
			t.Fatalf("GET %s: %v (a hang is the bug)", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// The attack: 400 requests with 100 kB method names each became a metrics label: /metrics grew
// to 40 MB and the memory with it. Unknown methods are one "other" label now.
func TestMetricLabelsBounded(t *testing.T) {
	e := newEnv(t)
	metrics := func() string {
		resp, err := http.Get(e.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	before := len(metrics())
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap := ms.HeapAlloc
	for i := range 400 {
		method := fmt.Sprintf("M%d%s", i, strings.Repeat("A", 100_000))
		req, _ := http.NewRequest(method, e.srv.URL+"/images/os.img", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	after := metrics()
	if strings.Contains(after, "AAAAAAAAAA") {
		t.Fatal("a client's method name became a metrics label")
	}
	if !strings.Contains(after, `method="other"`) {
		t.Error(`no method="other" series`)
	}
	if len(after) > before+4096 {
		t.Errorf("/metrics grew from %d to %d bytes", before, len(after))
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > heap+8<<20 {
		t.Errorf("heap grew from %d to %d bytes", heap, ms.HeapAlloc)
	}
}

// Whatever a hello holds, CheckHello accepts it only when every list and string in it, as the
// JSON that would be stored, is within the limits.
func FuzzCheckHello(f *testing.F) {
	f.Add([]byte(`{"boot_mac":"52:54:00:00:00:01","inventory":{"disks":[{"name":"vda"}],"modules":["wifi","lte"]},"timings":[{"phase":"dhcp"}]}`))
	f.Add([]byte(`{"inventory":{"inputs":[{"name":"kbd","keys":["KEY_POWER","KEY_A","KEY_B","KEY_C","KEY_D"]}]}}`))
	f.Add([]byte(`{"inventory":{"usb":[{"product":"a very long product name here"}]}}`))
	l := Limits{HelloMaxList: 4, HelloMaxString: 16}
	f.Fuzz(func(t *testing.T, body []byte) {
		var h protocol.Hello
		if json.Unmarshal(body, &h) != nil {
			return
		}
		if l.CheckHello(&h) != nil {
			return
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		var check func(v any)
		check = func(v any) {
			switch v := v.(type) {
			case string:
				if len(v) > 16 {
					t.Fatalf("accepted a string of %d bytes: %q", len(v), v)
				}
			case []any:
				if len(v) > 4 {
					t.Fatalf("accepted a list of %d entries", len(v))
				}
				for _, e := range v {
					check(e)
				}
			case map[string]any:
				for _, e := range v {
					check(e)
				}
			}
		}
		check(v)
	})
}

// The method label is one of a fixed set, whatever the method.
func FuzzMethodLabel(f *testing.F) {
	f.Add("GET")
	f.Add("M" + strings.Repeat("A", 1000))
	f.Fuzz(func(t *testing.T, m string) {
		switch got := methodLabel(m); got {
		case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
			if got != m {
				t.Fatalf("%q labelled %q", m, got)
			}
		case "other":
		default:
			t.Fatalf("%q labelled %q", m, got)
		}
	})
}
