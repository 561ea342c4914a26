package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestKeygenAndTLSInitCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Keep the commands' guidance off the test output.
	stdout := os.Stdout
	os.Stdout, _ = os.Open(os.DevNull)
	defer func() { os.Stdout = stdout }()

	keys := filepath.Join(dir, "keys")
	tests := []struct {
		name string
		cmd  func(context.Context, []string) int
		args []string
		want int
	}{
		{"keygen", cmdKeygen, []string{"-out", keys}, 0},
		{"keygen never overwrites", cmdKeygen, []string{"-out", keys}, 1},
		{"keygen needs -out", cmdKeygen, nil, 2},
		{"tls-init", cmdTLSInit, []string{"-out", filepath.Join(dir, "tls"), "-hosts", "127.0.0.1,line.local"}, 0},
		{"tls-init never overwrites", cmdTLSInit, []string{"-out", filepath.Join(dir, "tls"), "-hosts", "127.0.0.1"}, 1},
		{"tls-init needs hosts", cmdTLSInit, []string{"-out", filepath.Join(dir, "tls2"), "-hosts", " , "}, 1},
	}
	for _, tt := range tests {
		if got := tt.cmd(ctx, tt.args); got != tt.want {
			t.Errorf("%s: exit %d, want %d", tt.name, got, tt.want)
		}
	}
	fi, err := os.Stat(filepath.Join(keys, "operator.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("operator.key: %v %v", fi, err)
	}
}
