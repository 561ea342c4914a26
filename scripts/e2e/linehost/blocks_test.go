package linehost

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashline/flashline/server/config"
	srvlinehost "github.com/flashline/flashline/server/linehost"
)

const page = "../../../docs/line-host.md"

// TestPageBlocksSayWhereTheyRun keeps the page testable: every block carries a doc-test
// comment, and the page still has the steps the e2e test needs to reach a provisioned device.
func TestPageBlocksSayWhereTheyRun(t *testing.T) {
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ParseBlocks(b)
	if err != nil {
		t.Fatalf("%s:\n%v", page, err)
	}
	count := map[string]int{}
	var passed int
	for _, bl := range blocks {
		count[bl.Where]++
		if bl.After("device-passed") {
			passed++
		}
		if (bl.Where == Build || bl.Where == LineHost) && bl.Lang != "sh" {
			t.Errorf("line %d: a %s block must be sh, is %q", bl.Line, bl.Where, bl.Lang)
		}
	}
	if count[Build] < 2 || count[LineHost] < 5 || count[Config] != 1 || passed != 1 {
		t.Fatalf("the page lost steps the e2e test runs: %v blocks, %d after the device passed", count, passed)
	}
}

// TestPageConfigPassesCheck is the fast half of the e2e test: the server.yaml that init
// writes, edited as the page says, with the test's scenario and an image in place, passes
// flashline-server check.
func TestPageConfigPassesCheck(t *testing.T) {
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ParseBlocks(b)
	if err != nil {
		t.Fatal(err)
	}
	var snippet *Block
	for i := range blocks {
		if blocks[i].Where == Config {
			snippet = &blocks[i]
		}
	}
	if snippet == nil {
		t.Fatal("no config block")
	}
	root := t.TempDir()
	var files []string
	for _, f := range []string{"pxelinux.0", "lpxelinux.0", "bios/ldlinux.c32", "efi64/syslinux.efi", "efi64/ldlinux.e64", "vmlinuz", "initrd.gz"} {
		p := filepath.Join(root, "pkg", f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	for _, mode := range []string{"proxy", "full"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(root, mode)
			o := srvlinehost.Options{
				ConfigDir: filepath.Join(dir, "etc"), SrvDir: filepath.Join(dir, "srv"), DataDir: filepath.Join(dir, "data"),
				Kernel: files[5], Initrd: files[6], Mode: mode, Interface: "eth1",
				Packages: func(context.Context, string) ([]string, error) { return files[:5], nil },
				Interfaces: func() ([]srvlinehost.Interface, error) {
					return []srvlinehost.Interface{{Name: "eth1", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24")}}}, nil
				},
			}
			if _, err := srvlinehost.Init(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			cfgPath := filepath.Join(o.ConfigDir, "server.yaml")
			generated, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			merged, err := MergeConfig(generated, []byte(snippet.Text))
			if err != nil {
				t.Fatalf("page line %d: %v", snippet.Line, err)
			}
			if err := os.WriteFile(cfgPath, merged, 0o644); err != nil {
				t.Fatal(err)
			}
			scen, err := os.ReadFile("testdata/gm-box.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(o.SrvDir, "scenarios", "gm-box.yaml"), scen, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(o.SrvDir, "images", "gm-box-os-1.4.img.zst"), []byte("image"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, ps := config.CheckFile(cfgPath, config.CheckOptions{})
			if len(ps) > 0 {
				t.Fatalf("the page's server.yaml fails check:\n%v", ps)
			}
		})
	}
}

func TestParseBlocks(t *testing.T) {
	tests := []struct {
		name    string
		page    string
		want    []Block
		wantErr string
	}{
		{"build and line host", "text\n<!-- doc-test build -->\n```sh\nmake deb\n```\n\n<!-- doc-test line-host device-passed -->\n\n```sh\na\nb\n```\n",
			[]Block{{Line: 3, Lang: "sh", Where: Build, Args: []string{}, Text: "make deb\n"},
				{Line: 9, Lang: "sh", Where: LineHost, Args: []string{"device-passed"}, Text: "a\nb\n"}}, ""},
		{"config", "<!-- doc-test config /etc/x.yaml -->\n```yaml\nimages:\n  - a\n```\n",
			[]Block{{Line: 2, Lang: "yaml", Where: Config, Args: []string{"/etc/x.yaml"}, Text: "images:\n  - a\n"}}, ""},
		{"skip with reason", "<!-- doc-test skip: needs ifupdown -->\n```sh\nifup eth1\n```\n",
			[]Block{{Line: 2, Lang: "sh", Where: Skip, Args: []string{"needs ifupdown"}, Text: "ifup eth1\n"}}, ""},
		{"unmarked block", "Run:\n```sh\nrm -rf /\n```\n", nil, "line 2: fenced block without"},
		{"marker used up by the previous block", "<!-- doc-test build -->\n```sh\na\n```\n```sh\nb\n```\n", nil, "line 5: fenced block without"},
		{"skip without reason", "<!-- doc-test skip: -->\n```sh\na\n```\n", nil, "needs a reason"},
		{"unknown place", "<!-- doc-test laptop -->\n```sh\na\n```\n", nil, `doc-test "laptop"`},
		{"unknown condition", "<!-- doc-test line-host later -->\n```sh\na\n```\n", nil, `unknown condition "later"`},
		{"relative config file", "<!-- doc-test config server.yaml -->\n```yaml\na: 1\n```\n", nil, "absolute file"},
		{"unclosed", "<!-- doc-test build -->\n```sh\na\n", nil, "line 2: block not closed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBlocks([]byte(tc.page))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d blocks %+v, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Line != w.Line || g.Lang != w.Lang || g.Where != w.Where || g.Text != w.Text || strings.Join(g.Args, "|") != strings.Join(w.Args, "|") {
					t.Errorf("block %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestMergeConfig(t *testing.T) {
	file := "# head\nimages: []\n\n# rules\nrules: []\ntail: 1\n"
	tests := []struct {
		name, snippet, want, wantErr string
	}{
		{"both", "images:\n  - name: a\nrules:\n  - name: r\n    image: a\n",
			"# head\nimages:\n  - name: a\n\n# rules\nrules:\n  - name: r\n    image: a\ntail: 1\n", ""},
		{"one, without a final newline", "rules:\n  - name: r", "# head\nimages: []\n\n# rules\nrules:\n  - name: r\ntail: 1\n", ""},
		{"key not in the file", "jobs:\n  ttl: 1h\n", "", `no line "jobs: []"`},
		{"not a key", "- a\n", "", "not a top-level key"},
		{"twice", "rules: []\nrules: []\n", "", "twice"},
		{"empty", "# nothing\n", "", "no top-level key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MergeConfig([]byte(file), []byte(tc.snippet))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// FuzzParseBlocks: any page parses without panicking, and every block returned has a place
// and text that is part of the page.
func FuzzParseBlocks(f *testing.F) {
	if b, err := os.ReadFile(page); err == nil {
		f.Add(b)
	}
	f.Add([]byte("<!-- doc-test build -->\n```sh\nx\n```\n"))
	f.Add([]byte("```\n```\n```"))
	f.Fuzz(func(t *testing.T, b []byte) {
		blocks, err := ParseBlocks(b)
		if err != nil {
			return
		}
		for _, bl := range blocks {
			if bl.Where == "" || !strings.Contains(string(b), bl.Text) {
				t.Fatalf("block %+v: no place, or text not from the page", bl)
			}
		}
	})
}
