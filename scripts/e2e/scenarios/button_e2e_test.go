//go:build e2e

package scenarios

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/atmodem"
)

// TestButtonSource: with source: builtin, the machine's own ACPI power button (QMP
// system_powerdown: the guest's "Power Button", host bus) passes, and the same key from the
// virtio keyboard (what an operator's plugged-in keyboard is to the box) is refused.
// gm-box-qemu.yaml keeps the default source (any) and passes with the keyboard.
func TestButtonSource(t *testing.T) {
	body := `name: button-builtin
steps:
  - name: Power button
    button.press: {key: KEY_POWER, prompt: "` + powerPrompt + `", source: builtin}
    timeout: 90s
`
	for _, tc := range []struct {
		name   string
		acpi   bool
		status string
		reason string
	}{
		{"acpi-button-passes", true, "pass", ""},
		{"keyboard-refused", false, "fail", "came from QEMU Virtio Keyboard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			initrd := testInitrd(t, map[string]string{"button.yaml": body})
			d := device{
				Initrd:    initrd,
				Append:    `rdinit=/bin/flashline-testbed uroot.uinitargs="scenario run --force /scenarios/button.yaml"`,
				Modem:     atmodem.EC25(),
				PressOn:   regexp.MustCompile(regexp.QuoteMeta(">>> " + powerPrompt)),
				PressACPI: tc.acpi,
				Timeout:   8 * time.Minute,
			}
			vm := boot(t, d)
			ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
			defer cancel()
			_, err := vm.Expect(ctx, summaryRe, d.Timeout)
			lines := vm.Lines()
			var shown []string
			for _, l := range lines {
				l = strings.TrimRight(ansi.ReplaceAllString(l, ""), "\r")
				if strings.Contains(l, "Power button") || strings.Contains(l, "REASON") || strings.Contains(l, "measured:") || strings.Contains(l, "key_device") || strings.Contains(l, "input_devices") {
					shown = append(shown, l)
				}
			}
			t.Logf("console (filtered):\n%s", strings.Join(shown, "\n"))
			if err != nil {
				t.Fatalf("no verdict: %v", err)
			}
			res, ok := summary(lines)
			if !ok || res.Status != tc.status || !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("result %+v, want %s %q", res, tc.status, tc.reason)
			}
		})
	}
}
