package target

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommitAndWipeTables(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xee}, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tg, err := Open(p, Options{ImageSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	head := bytes.Repeat([]byte("head"), (1<<20+100)/4) // an unaligned tail, too
	for _, off := range []int64{0, 1<<20 + 7} {
		if err := tg.Commit(head, off, true, "first MiB"); err != nil {
			t.Fatalf("commit at %d: %v", off, err)
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got[off:off+int64(len(head))], head) {
			t.Fatalf("commit at %d: not on the target", off)
		}
	}
	if err := tg.Commit(nil, 0, true, "first MiB"); err != nil {
		t.Fatalf("empty commit: %v", err)
	}
	// A file has no end to wipe: only its first bytes.
	if err := tg.WipeTables(1 << 20); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) {
		t.Fatal("first MiB not wiped")
	}
	if bytes.Equal(got[2<<20:], make([]byte, 1<<20)) {
		t.Fatal("a file's end was wiped")
	}
}

func TestCommitReportsWhat(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	os.WriteFile(p, nil, 0o644)
	tg, err := Open(p, Options{ImageSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	tg.Close() // writes now fail
	err = tg.Commit([]byte("x"), 0, false, "last MiB")
	if err == nil || !strings.Contains(err.Error(), "write at byte 0") {
		t.Fatalf("err = %v", err)
	}
}
