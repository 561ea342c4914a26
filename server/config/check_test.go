package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario"
)

// base is a valid HTTP-only configuration the cases below add mistakes to.
const base = "data_dir: /d\nimages_dir: /i\nscenarios_dir: /s\n"

func TestCheckPositions(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // every problem, in order
	}{
		{"misspelt key", base + "http:\n  enabled: true\n  publc_url: http://10.0.0.1:8080\n",
			[]string{`c.yaml:6:3: unknown key "http.publc_url" (did you mean "public_url"?)`}},
		{"port out of range", base + "http:\n  enabled: true\n  listen: \":80800\"\n",
			[]string{`c.yaml:6:11: http.listen ":80800": port 80800 out of range (0-65535)`}},
		{"every problem at once", base + "http:\n  enabled: yes please\n  listen: 8080\njobs: {ttl: soon, retry_after: -1s}\nrules:\n  - {scenario: s.yaml, image: nope, target: {transport: floppy}}\n",
			[]string{
				`c.yaml:5:12: http.enabled: want true or false, got "yes please"`,
				`c.yaml:6:11: http.listen "8080": want host:port or :port`,
				`c.yaml:7:13: jobs.ttl: want a duration such as 30s, 2m or 1h, got "soon"`,
				`c.yaml:7:32: jobs.retry_after -1s: must not be negative`,
				`c.yaml:9:31: rules[0] (rule 1): image "nope" is not in images`,
				`c.yaml:9:57: rules[0] (rule 1): target.transport "floppy": want one of virtio, nvme, sata, mmc, usb, scsi`,
			}},
		{"settings without enabled", base + "http:\n  listen: \":8080\"\n  public_url: http://10.0.0.1:8080\ndhcp:\n  enabled: false\n  mode: proxy\n",
			[]string{`c.yaml:4:1: http: has settings but no "enabled: true", so it is off (write enabled: true, or enabled: false to keep it off)`}},
		{"missing key points at its section", "images_dir: /i\nscenarios_dir: /s\nhttp:\n  enabled: true\n",
			[]string{`c.yaml:1:1: data_dir: required (the results database and device boot modes live there)`}},
		{"duplicate key", base + "http: {enabled: true, enabled: false}\n",
			[]string{`c.yaml:4:23: duplicate key "http.enabled" (first at line 4)`}},
		{"syntax", "http: [\n", []string{`c.yaml:1:1: did not find expected node content`}},
		{"wrong shape", "rules: {scenario: x}\n", []string{`c.yaml:1:8: rules: want a list, got a mapping`}},
		{"range reversed", "dhcp: {enabled: true, mode: full, range_start: 10.0.0.9, range_end: 10.0.0.1, subnet: 10.1.0.0/24}\n",
			[]string{`c.yaml:1:1: data_dir: required for dhcp full mode (the lease file lives there)`,
				`c.yaml:1:69: dhcp.range_end "10.0.0.1": before range_start "10.0.0.9"`,
				`c.yaml:1:87: dhcp.subnet "10.1.0.0/24": does not contain the range 10.0.0.9-10.0.0.1`}},
		{"valid", base + "http: {enabled: true, listen: \"127.0.0.1:0\"}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := Check("c.yaml", []byte(tt.yaml), CheckOptions{})
			var got []string
			for _, p := range ps {
				got = append(got, p.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestCheckHost lays out a line host in a temporary directory and removes one thing at a time.
func TestCheckHost(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"tftp/pxelinux.0", "tftp/ldlinux.c32", "tftp/vmlinuz", "tftp/initrd.gz", "images/os.img", "keys/operator.key"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "scenarios"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := "name: ok\nsteps:\n  - name: disk\n    disk.present: {min_size: 1GB}\n"
	bad := "name: bad\nsteps:\n  - name: disk\n    disk.presnt: {}\n"
	os.WriteFile(filepath.Join(dir, "scenarios", "good.yaml"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "scenarios", "bad.yaml"), []byte(bad), 0o644)
	cfg := `data_dir: data
key_file: keys/operator.key
images_dir: images
scenarios_dir: scenarios
http: {enabled: true, listen: "127.0.0.1:0", public_url: "http://127.0.0.1:8080"}
tftp: {enabled: true, root: tftp}
images: [{name: os, file: os.img}, {name: gone, file: gone.img}]
rules:
  - {scenario: good.yaml, image: os}
  - {scenario: bad.yaml, image: os}
  - {scenario: missing.yaml, image: gone}
`
	path := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "tftp", "ldlinux.c32"))
	_, ps := CheckFile(path, CheckOptions{Host: true, LintScenario: agentLint})
	got := ps.Error()
	for _, want := range []string{
		path + `:6:29: tftp.root: boot file "` + filepath.Join(dir, "tftp", "ldlinux.c32") + `": does not exist`,
		path + `:7:55: images[1] (gone): file "` + filepath.Join(dir, "images", "gone.img") + `": does not exist`,
		path + `:10:16: rules[1] (rule 2): scenario "bad.yaml" fails lint (2 problems, listed after this file's)`,
		path + `:11:16: rules[2] (rule 3): scenario "missing.yaml": does not exist in scenarios_dir`,
		filepath.Join(dir, "scenarios", "bad.yaml") + `:4:5: unknown check kind "disk.presnt" (did you mean "disk.present"?)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if len(ps) != 6 {
		t.Errorf("%d problems, want 6:\n%s", len(ps), got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Error("check created the data directory")
	}
	// Without Host, only the file itself is checked.
	if _, ps := CheckFile(path, CheckOptions{}); len(ps) != 0 {
		t.Errorf("file-only check: %v", ps)
	}
}

// TestExampleNeedsItsHost: the documented example is valid as a file, and on a host without
// its directories every missing one is named at once.
func TestExampleNeedsItsHost(t *testing.T) {
	p := filepath.Join("..", "..", "docs", "server.example.yaml")
	if _, ps := CheckFile(p, CheckOptions{}); len(ps) != 0 {
		t.Fatalf("example: %v", ps)
	}
	if _, err := os.Stat("/srv/flashline"); err == nil {
		t.Skip("this host has /srv/flashline")
	}
	_, ps := CheckFile(p, CheckOptions{Host: true})
	got := ps.Error()
	for _, want := range []string{"key_file", "images_dir", "scenarios_dir"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte(base + "http: {enabled: true, listen: ':80800', publc_url: x}\n"))
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a]\nhttp: {<<: *b}\n"))
	f.Add([]byte("rules: [{target: {transport: floppy, min_size: 1XB}, after: 3}]\ndhcp: {lease_time: 1h, enabled: on}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ps := Check("f.yaml", b, CheckOptions{})
		for _, p := range ps {
			if p.Line < 1 || p.Col < 1 || p.Msg == "" {
				t.Fatalf("problem without a position or message: %+v", p)
			}
		}
		if len(ps) == 0 {
			if c == nil {
				t.Fatal("no problems and no config")
			}
			for _, im := range c.Images {
				if CheckRelPath(im.File) != nil {
					t.Fatalf("accepted image path %q", im.File)
				}
			}
		}
	})
}

// TestDecodeTextUnmarshaler: a key of a type that reads itself from text (as a section added
// later may have) decodes, and its error comes at its position.
func TestDecodeTextUnmarshaler(t *testing.T) {
	var v struct {
		Addr netip.Addr `yaml:"addr"`
	}
	for _, tt := range []struct{ yaml, want string }{
		{"addr: 10.0.0.1\n", ""},
		{"addr: 10.0.0.300\n", `f.yaml:1:7: addr: ParseAddr("10.0.0.300")`},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
			t.Fatal(err)
		}
		d := newDecoder("f.yaml")
		d.decode(doc.Content[0], reflect.ValueOf(&v).Elem(), "")
		got := d.problems.Error()
		if tt.want == "" && (got != "" || v.Addr.String() != "10.0.0.1") || tt.want != "" && !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q: %q %v, want %q", tt.yaml, got, v.Addr, tt.want)
		}
	}
}

// agentLint is the linter cmds/flashline-server wires in: the agent's own.
func agentLint(path string) Problems {
	var ps Problems
	for _, e := range scenario.LintFile(path, checks.Default()) {
		ps = append(ps, Problem{File: e.File, Line: e.Line, Col: e.Col, Msg: e.Msg})
	}
	return ps
}
