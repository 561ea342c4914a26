package bootstrap

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/flashline/flashline/agent/console"
)

func TestBootHostMode(t *testing.T) {
	var out bytes.Buffer
	no := false
	env, err := Boot(context.Background(), Options{Console: console.New(&out), Device: &no,
		Cmdline: "BOOTIF=01-52-54-00-12-34-56 flashline.debug", Server: "http://127.0.0.1:9/"})
	if err != nil {
		t.Fatal(err)
	}
	if env.Server != "http://127.0.0.1:9" || !env.Params.Debug || env.Params.BootIF.String() != "52:54:00:12:34:56" {
		t.Errorf("env %+v", env)
	}
	if !strings.Contains(out.String(), "host mode") {
		t.Errorf("console:\n%s", out.String())
	}
	if _, err := Boot(context.Background(), Options{Console: console.Discard(), Device: &no, Cmdline: "x", Server: "ftp://x"}); err == nil {
		t.Error("a bad --server was accepted")
	}
}
