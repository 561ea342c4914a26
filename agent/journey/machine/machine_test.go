package machine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/journey"
	"github.com/flashline/flashline/agent/operator"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/protocol"
)

type fixedInventory protocol.Inventory

func (f fixedInventory) Inventory(context.Context) (protocol.Inventory, error) {
	return protocol.Inventory(f), nil
}

func TestScenarioRunner(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantErr  string
		statuses []protocol.Status
	}{
		{"pass and fail", "name: s\nsteps:\n  - name: ok\n    exec: {command: [true]}\n  - name: bad\n    exec: {command: [false]}\n",
			"", []protocol.Status{protocol.StatusPass, protocol.StatusFail}},
		{"unknown kind", "name: s\nsteps:\n  - name: x\n    exce: {command: [true]}\n", "exce", nil},
		{"not for this device", "name: s\nmatch: {product: Other-Box}\nsteps:\n  - name: ok\n    exec: {command: [true]}\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			hw := protocol.Inventory{DMI: protocol.DMI{Serial: "S1", Product: "GM-Box"}}
			s := ScenarioRunner{Checks: checks.Default(), Inventory: fixedInventory(hw), Console: operator.New(&out, false),
				Log: slog.New(slog.DiscardHandler)}
			var events []protocol.Event
			steps, err := s.Run(context.Background(), []byte(tt.yaml), hw, func(ev protocol.Event) { events = append(events, ev) })
			if tt.statuses == nil {
				if err == nil {
					t.Fatalf("no error, steps %+v", steps)
				}
				if tt.wantErr == "" && !errors.Is(err, scenario.ErrNotApplicable) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to name %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != len(tt.statuses) {
				t.Fatalf("%d steps, want %d", len(steps), len(tt.statuses))
			}
			for i, st := range steps {
				if st.Status != tt.statuses[i] {
					t.Errorf("step %s: %s, want %s", st.Name, st.Status, tt.statuses[i])
				}
			}
			// Every step is reported to the server as it ends, and shown on the console.
			ends := 0
			for _, ev := range events {
				if ev.Kind == protocol.EventStep && (ev.Status == protocol.StatusPass || ev.Status == protocol.StatusFail) {
					ends++
				}
			}
			if ends != len(steps) {
				t.Errorf("%d step-end events, want %d: %+v", ends, len(steps), events)
			}
			if !strings.Contains(out.String(), "bad") {
				t.Errorf("console does not show the failed step:\n%s", out.String())
			}
		})
	}
}

func TestPromptReachesServer(t *testing.T) {
	var out bytes.Buffer
	var got []protocol.Event
	p := promptReporter{operator.New(&out, false), func(ev protocol.Event) { got = append(got, ev) }}
	p.Prompt("button", "press the power button")
	if len(got) != 1 || got[0].Kind != protocol.EventPrompt || got[0].Step != "button" || got[0].Message != "press the power button" {
		t.Fatalf("events %+v", got)
	}
	if !strings.Contains(out.String(), "press the power button") {
		t.Fatalf("console %q", out.String())
	}
}

func TestFlashToFile(t *testing.T) {
	dir := t.TempDir()
	img := bytes.Repeat([]byte("flashline image "), 64<<10) // 1 MiB
	src := filepath.Join(dir, "img.raw")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "disk")
	if err := os.WriteFile(dst, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	var last int64
	fr, err := Flash(context.Background(), journey.FlashRequest{
		Source: src, Target: dst, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(img)),
		Progress: func(done, total int64) { last = done },
	}, &trust.Policy{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if fr.Target != dst || fr.Bytes != int64(len(img)) || fr.SHA256 != hex.EncodeToString(sum[:]) || fr.Format != "raw" {
		t.Fatalf("result %+v", fr)
	}
	if last != int64(len(img)) {
		t.Errorf("last progress %d, want %d", last, len(img))
	}
	f, _ := os.Open(dst)
	defer f.Close()
	head := make([]byte, len(img))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, img) {
		t.Fatal("target does not hold the image")
	}
	// A wrong hash fails the flash, with the target named in the result.
	fr, err = Flash(context.Background(), journey.FlashRequest{Source: src, Target: dst, SHA256: strings.Repeat("0", 64)},
		&trust.Policy{}, slog.New(slog.DiscardHandler))
	if err == nil || fr.Target != dst {
		t.Fatalf("wrong hash: %+v, %v", fr, err)
	}
}
