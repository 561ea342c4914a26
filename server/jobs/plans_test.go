package jobs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

func TestPlans(t *testing.T) {
	dir := t.TempDir()
	scen := `name: box
steps:
  - name: Wi-Fi sees the line AP
    wifi.scan: {ssid: LINE-TEST, min_signal_dbm: -65}
  - name: Power button
    prompt: Press and release the POWER button
    button.press: {key: KEY_POWER}
`
	if err := os.WriteFile(filepath.Join(dir, "box.yaml"), []byte(scen), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlans(dir).Plan("box.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 2 {
		t.Fatalf("plan %+v", p)
	}
	wifi, ok := p.Step("Wi-Fi sees the line AP")
	if !ok || wifi.Check != "wifi.scan" || !strings.Contains(wifi.Limits, "min_signal_dbm=-65") || !strings.Contains(wifi.Limits, "ssid=LINE-TEST") {
		t.Errorf("wifi step %+v", wifi)
	}
	if p.Steps[1].Prompt != "Press and release the POWER button" {
		t.Errorf("prompt %q", p.Steps[1].Prompt)
	}
	if _, err := NewPlans(dir).Plan("../etc/passwd"); err == nil {
		t.Error("a path out of the directory was read")
	}
}

func TestExplain(t *testing.T) {
	is := &Issuer{rules: []config.Rule{
		{Name: "box", Match: config.Match{Product: "GM-Box*"}},
		{Name: "lte", Match: config.Match{Modules: []string{"lte"}}},
		{Name: "nowifi", Match: config.Match{Modules: []string{"!wifi"}}},
		{Name: "bench", Match: config.Match{MACs: []string{"52:54:00:aa:*"}}},
	}}
	got := is.Explain(protocol.Inventory{DMI: protocol.DMI{Product: "Other 1"}, Modules: []string{"wifi"}}, "52:54:00:00:00:01")
	for _, want := range []string{`rule "box": product "Other 1" does not match "GM-Box*"`, `rule "lte": module lte is missing`,
		`rule "nowifi": module wifi is present`, `rule "bench": MAC 52:54:00:00:00:01 is not in 52:54:00:aa:*`} {
		if !strings.Contains(got, want) {
			t.Errorf("explanation %q lacks %q", got, want)
		}
	}
	if got := (&Issuer{}).Explain(protocol.Inventory{}, "52:54:00:00:00:01"); got != "no rules are configured" {
		t.Errorf("no rules: %q", got)
	}
}
