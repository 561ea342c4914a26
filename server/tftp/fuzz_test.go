package tftp

import (
	"path"
	"strings"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("\x00\x01pxelinux.0\x00octet\x00"))
	f.Add([]byte("\x00\x01pxelinux.cfg/01-52-54-00-12-34-56\x00octet\x00blksize\x001468\x00tsize\x000\x00"))
	f.Add([]byte("\x00\x02up\x00netascii\x00"))
	f.Add([]byte("\x00\x01a\x00octet\x00windowsize\x00"))
	f.Add([]byte("\x00\x01a\x00octet\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			return
		}
		if r.op != opRRQ && r.op != opWRQ {
			t.Fatalf("accepted opcode %d", r.op)
		}
		if r.filename == "" || len(r.filename) > maxFilenameLen || strings.IndexByte(r.filename, 0) >= 0 {
			t.Fatalf("accepted filename %q", r.filename)
		}
		if len(r.options) > maxOptions {
			t.Fatalf("accepted %d options", len(r.options))
		}
		// Whatever was accepted must negotiate without panicking.
		tr := &transfer{src: source{size: int64(len(b))}, blksize: defaultBlock, window: 1}
		for _, o := range tr.negotiate(r.options, maxBlockSize, 16) {
			if o.value == "" {
				t.Fatalf("negotiated empty value for %q", o.name)
			}
		}
		if tr.blksize < minBlockSize || tr.blksize > maxBlockSize || tr.window < 1 || tr.window > 16 || tr.timeout < 0 {
			t.Fatalf("negotiated blksize %d window %d timeout %v", tr.blksize, tr.window, tr.timeout)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	f.Add([]byte("\x00\x04\x00\x01"))
	f.Add([]byte("\x00\x05\x00\x08option refused\x00"))
	f.Add([]byte("\x00\x05\x00\x00no nul"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseReply(b)
		if err != nil {
			return
		}
		if r.op != opACK && r.op != opERROR {
			t.Fatalf("accepted opcode %d", r.op)
		}
		if len(r.msg) > 4*128 {
			t.Fatalf("message of %d bytes kept", len(r.msg))
		}
	})
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"pxelinux.0", "/pxelinux.cfg/default", `a\..\b`, "../x", "/srv/tftp/x", "a//b/./c", "....", ".../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean, err := cleanName("/srv/tftp", name)
		if err != nil {
			return
		}
		if clean == "" || strings.HasPrefix(clean, "/") || path.IsAbs(clean) {
			t.Fatalf("cleanName(%q) = %q: not relative", name, clean)
		}
		for _, c := range strings.Split(clean, "/") {
			if c == ".." || c == "." || c == "" {
				t.Fatalf("cleanName(%q) = %q: component %q", name, clean, c)
			}
		}
	})
}
