package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestWriteInitrd(t *testing.T) {
	var buf bytes.Buffer
	if err := writeInitrd(&buf, []byte("\x7fELF fake init")); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	for _, r := range recs {
		got[r.Name] = r
	}
	init, ok := got["init"]
	if !ok || init.Mode&0o111 == 0 {
		t.Fatalf("no executable /init: %v", recs)
	}
	b, _ := io.ReadAll(io.NewSectionReader(init.ReaderAt, 0, int64(init.FileSize)))
	if string(b) != "\x7fELF fake init" {
		t.Errorf("init content %q", b)
	}
	con, ok := got["dev/console"]
	if !ok || con.Rmajor != 5 || con.Rminor != 1 {
		t.Errorf("dev/console missing or wrong: %+v", con.Info)
	}
	for _, d := range []string{"dev", "proc", "sys"} {
		if _, ok := got[d]; !ok {
			t.Errorf("directory %s missing", d)
		}
	}
}
