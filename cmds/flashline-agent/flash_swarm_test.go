package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// TestFlashTorrentCommand: --torrent with no peer to be had falls back to SOURCE and ends
// right; a bad hash still fails with one line; the swarm flags need --torrent.
func TestFlashTorrentCommand(t *testing.T) {
	dir := t.TempDir()
	img := bytes.Repeat([]byte("flashline swarm "), 200000)
	src := filepath.Join(dir, "img.raw")
	os.WriteFile(src, img, 0o644)
	info := metainfo.Info{Name: "img.raw", Length: int64(len(img)), PieceLength: 256 << 10}
	if err := info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(img)), nil
	}); err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	mi := metainfo.MetaInfo{InfoBytes: bencode.MustMarshal(info)}
	if err := mi.Write(&tb); err != nil {
		t.Fatal(err)
	}
	tor := filepath.Join(dir, "img.torrent")
	os.WriteFile(tor, tb.Bytes(), 0o644)
	s := sha256.Sum256(img)
	sum := hex.EncodeToString(s[:])
	dst := filepath.Join(dir, "disk")

	code, out := runFlash(t, "--torrent", tor, "--info-hash", mi.HashInfoBytes().HexString(), "--swarm-stall", "500ms", "--linger", "1s", "--sha256", sum, src, dst)
	if code != 0 || !strings.Contains(out, "flash: swarm: 0 B from peers") || !strings.Contains(out, "from byte 0") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, img) {
		t.Fatal("target differs from the image")
	}
	code, out = runFlash(t, "--torrent", tor, "--swarm-stall", "500ms", "--sha256", strings.Repeat("0", 64), src, dst)
	if code != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.HasPrefix(out, "flash: sha256 mismatch") {
		t.Fatalf("mismatch: exit %d: %q", code, out)
	}
	if code, out := runFlash(t, "--linger", "5s", src, dst); code != 2 || !strings.Contains(out, "need --torrent") {
		t.Fatalf("--linger without --torrent: exit %d: %q", code, out)
	}
}
