package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestReadSerial(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		missing       bool
		want          string
	}{
		{name: "plain", content: "TESTSERIAL\n", want: "TESTSERIAL"},
		{name: "spaces and control", content: "  AB 12\x01\n", want: "AB_12_"},
		{name: "empty", content: "\n", want: "unknown"},
		{name: "missing", missing: true, want: "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if !tc.missing {
				dir := filepath.Join(root, "class/dmi/id")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "product_serial"), []byte(tc.content), 0o400); err != nil {
					t.Fatal(err)
				}
			}
			if got := readSerial(root); got != tc.want {
				t.Errorf("readSerial = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMarker(t *testing.T) {
	if got, want := marker("X1"), "GM-SOFT-KIT BOOTED serial=X1"; got != want {
		t.Errorf("marker = %q, want %q", got, want)
	}
}

func TestOutputs(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []string
	}{
		{"console=ttyS0,115200 quiet", []string{"/dev/console"}},
		{"quiet", []string{"/dev/console", "/dev/ttyS0"}},
		{"console=tty0", []string{"/dev/console", "/dev/ttyS0"}},
	} {
		if got := outputs(tc.cmdline); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("outputs(%q) = %v, want %v", tc.cmdline, got, tc.want)
		}
	}
}

func TestParam(t *testing.T) {
	for _, tc := range []struct{ cmdline, want string }{
		{"quiet gmsoftkit.after=idle", "idle"},
		{"quiet", "poweroff"},
		{"gmsoftkit.after=idle gmsoftkit.after=reboot", "reboot"},
	} {
		if got := param(tc.cmdline, "gmsoftkit.after", "poweroff"); got != tc.want {
			t.Errorf("param(%q) = %q, want %q", tc.cmdline, got, tc.want)
		}
	}
}
