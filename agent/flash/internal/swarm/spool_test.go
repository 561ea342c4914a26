package swarm_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/flash/internal/swarm"
	"github.com/flashline/flashline/agent/flash/internal/swarm/swarmtest"
)

// memSpool is a spool in memory, as a test's stand-in for the disk after the image.
type memSpool struct {
	mu sync.Mutex
	b  []byte
}

func (m *memSpool) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memSpool) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(off) >= len(m.b) {
		return 0, errors.New("read past the spool's end")
	}
	return copy(p, m.b[off:]), nil
}

// TestSpoolServesPastWindow: A reads an image eight times its memory window and, once the
// only other seed is gone, B (which starts from the image's head) gets all of it from A:
// the pieces A's window let go of are served from its spool.
func TestSpoolServesPastWindow(t *testing.T) {
	data := randomData(8<<20, 11)
	mi := swarmtest.Metainfo(t, data, 256<<10, "")
	seed := swarmtest.StartSeed(t, data, mi, swarmtest.SeedOptions{})
	const window = 1 << 20
	a, err := swarm.Open(t.Context(), swarm.Options{Torrent: parse(t, mi), Peers: []string{seed.Addr}, Window: window, Stall: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SetSpool(&memSpool{}, int64(len(data)))
	got, err := readAll(a)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("A: %d bytes, err %v", len(got), err)
	}
	seed.Close()
	st := a.Stats()
	if st.MaxHeld > window {
		t.Errorf("A held %d bytes in memory, window %d", st.MaxHeld, window)
	}
	if st.Spooled < int64(len(data))-2*window {
		t.Errorf("A spooled %d bytes of %d", st.Spooled, len(data))
	}
	b, err := swarm.Open(t.Context(), swarm.Options{Torrent: parse(t, mi), Peers: []string{a.Addr()}, Window: window, Stall: 5 * time.Second, NoPEX: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err = readAll(b)
	if err != nil {
		t.Fatalf("B after %d bytes from A alone: %v", len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("B read other bytes")
	}
}

// TestSeedAvoidedWhilePeersDeliver: with another device serving the whole image as fast as
// the server's seed, a device takes next to nothing from the seed; once that device is
// unplugged it goes back to the seed within the quiet time, long before a stall.
func TestSeedAvoidedWhilePeersDeliver(t *testing.T) {
	data := randomData(8<<20, 12)
	mi := swarmtest.Metainfo(t, data, 256<<10, "")
	// The server at 127.0.0.2, another device at 127.0.0.1: the gate tells them apart by
	// address. Both at 1 MiB/s: the image takes about 8 s from either.
	server := swarmtest.StartSeed(t, data, mi, swarmtest.SeedOptions{Host: "127.0.0.2", UploadRate: 1 << 20})
	device := swarmtest.StartSeed(t, data, mi, swarmtest.SeedOptions{UploadRate: 1 << 20})
	src, err := swarm.Open(t.Context(), swarm.Options{
		Torrent: parse(t, mi), Peers: []string{server.Addr, device.Addr}, Window: 4 << 20,
		Stall: 10 * time.Second, ServerHost: "127.0.0.2", SeedQuiet: time.Second, NoPEX: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	buf := make([]byte, 64<<10)
	var got []byte
	for len(got) < len(data)/2 {
		n, err := src.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	half := src.Stats()
	if half.FromServer > int64(len(data))/8 {
		t.Errorf("%d bytes of the first half came from the server's seed, want next to none while the other device delivers", half.FromServer)
	}
	device.Close()
	t0 := time.Now()
	var stalled time.Duration
	for {
		r0 := time.Now()
		n, err := src.Read(buf)
		stalled = max(stalled, time.Since(r0))
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes that differ from the image", len(got))
	}
	st := src.Stats()
	if st.SeedOpens < 1 {
		t.Error("the server's seed was never asked again after the device went")
	}
	if st.FromServer <= half.FromServer {
		t.Error("nothing came from the server's seed after the device went")
	}
	if stalled > 5*time.Second {
		t.Errorf("a read waited %v after the device went", stalled)
	}
	t.Logf("first half: %d of %d bytes from the server; after the device went %v, longest read %v, seed reopened %d times",
		half.FromServer, half.FromPeers, time.Since(t0), stalled, st.SeedOpens)
}
