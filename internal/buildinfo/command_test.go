package buildinfo

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string // substrings
	}{
		{nil, 0, "flashline-agent dev, " + runtime.Version() + "\n", ""},
		{[]string{"-json"}, 0, `"go":"` + runtime.Version() + `"`, ""},
		{[]string{"-h"}, 0, "", "-json"},
		{[]string{"extra"}, 2, "", "unexpected argument"},
		{[]string{"-bogus"}, 2, "", "-bogus"},
	} {
		var out, errb bytes.Buffer
		if code := Command("flashline-agent", &out, &errb, tc.args); code != tc.code {
			t.Errorf("version %q: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
		}
		if !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("version %q: stdout %q (want %q), stderr %q (want %q)", tc.args, out.String(), tc.out, errb.String(), tc.err)
		}
		if len(tc.args) == 1 && tc.args[0] == "-json" {
			var v struct{ Version, Go string }
			if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version != "dev" {
				t.Errorf("version -json: %q: %v", out.String(), err)
			}
		}
	}
}
