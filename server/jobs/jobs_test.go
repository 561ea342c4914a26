package jobs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

func TestMatches(t *testing.T) {
	inv := protocol.Inventory{DMI: protocol.DMI{Product: "GM-Box 3", Serial: "GMB3-0042"}, Modules: []string{"wifi", "lte"}}
	mac := "52:54:00:12:34:56"
	tests := []struct {
		name string
		m    config.Match
		want bool
	}{
		{"empty matches all", config.Match{}, true},
		{"product glob", config.Match{Product: "GM-Box*"}, true},
		{"product other", config.Match{Product: "GM-Box 4"}, false},
		{"serial glob", config.Match{Serial: "GMB3-00??"}, true},
		{"mac upper glob", config.Match{MACs: []string{"52:54:00:*"}}, true},
		{"mac list miss", config.Match{MACs: []string{"02:00:00:00:00:01", "52:54:01:*"}}, false},
		{"modules all present", config.Match{Modules: []string{"wifi", "lte"}}, true},
		{"module missing", config.Match{Modules: []string{"bluetooth"}}, false},
		{"module must be absent", config.Match{Modules: []string{"!bluetooth"}}, true},
		{"module present but excluded", config.Match{Modules: []string{"!lte"}}, false},
		{"all fields", config.Match{Product: "GM-*", MACs: []string{"52:54:00:12:34:56"}, Modules: []string{"wifi"}}, true},
	}
	for _, tt := range tests {
		if got := Matches(tt.m, inv, mac); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func compressed(t *testing.T, format string, raw []byte) []byte {
	var b bytes.Buffer
	switch format {
	case "gzip":
		w := gzip.NewWriter(&b)
		w.Write(raw)
		w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(&b)
		w.Write(raw)
		w.Close()
	case "xz":
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		w.Close()
	default:
		return raw
	}
	return b.Bytes()
}

func TestLoadImages(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte("flashline image "), 100000)
	sum := sha256.Sum256(raw)
	want := hex.EncodeToString(sum[:])
	var imgs []config.Image
	for _, f := range []string{"raw", "gzip", "zstd", "xz"} {
		writeFile(t, filepath.Join(dir, "os."+f), compressed(t, f, raw))
		imgs = append(imgs, config.Image{Name: f, File: "os." + f})
	}
	writeFile(t, filepath.Join(dir, "side.zst"), compressed(t, "zstd", raw))
	writeFile(t, filepath.Join(dir, "side.zst.sha256"), []byte(strings.ToUpper(want)+"  side.img size=1600000\n"))
	// mkfirmware's layout: raw image, compressed copies, the raw's .sha256 and .json manifest.
	writeFile(t, filepath.Join(dir, "fw", "firmware.img"), raw)
	writeFile(t, filepath.Join(dir, "fw", "firmware.img.xz"), compressed(t, "xz", raw))
	writeFile(t, filepath.Join(dir, "fw", "firmware.img.sha256"), []byte(want+"  firmware.img\n"))
	writeFile(t, filepath.Join(dir, "mf", "os.img.gz"), compressed(t, "gzip", raw))
	writeFile(t, filepath.Join(dir, "mf", "os.img.json"), []byte(fmt.Sprintf(`{"size": %d, "sha256": %q, "files": ["os.img.gz"]}`, len(raw), want)))
	imgs = append(imgs, config.Image{Name: "raw beside", File: "fw/firmware.img.xz"}, config.Image{Name: "manifest", File: "mf/os.img.gz"})
	imgs = append(imgs, config.Image{Name: "sidecar", File: "side.zst"},
		config.Image{Name: "configured", File: "os.gzip", SHA256: want, Size: config.Bytes(len(raw))})

	cache := filepath.Join(t.TempDir(), "cache.json")
	got, err := LoadImages(context.Background(), imgs, ImageOptions{Dir: dir, Compute: true, CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	wantSource := map[string]string{"raw": "computed", "gzip": "computed", "zstd": "computed", "xz": "computed",
		"sidecar": "sidecar side.zst.sha256", "configured": "config", "raw beside": "sidecar fw/firmware.img.sha256, fw/firmware.img",
		"manifest": "sidecar mf/os.img.json"}
	for name, src := range wantSource {
		im := got[name]
		if im.SHA256 != want || im.Size != int64(len(raw)) || im.Source != src {
			t.Errorf("%s: %+v, want sha %s size %d from %s", name, im, want, len(raw), src)
		}
	}
	if got["xz"].Format != "xz" || got["raw"].Format != "raw" {
		t.Errorf("formats %q %q", got["xz"].Format, got["raw"].Format)
	}
	// Second load: from the cache, no hashing.
	got, err = LoadImages(context.Background(), imgs[:4], ImageOptions{Dir: dir, Compute: false, CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	if got["zstd"].Source != "cache" || got["zstd"].SHA256 != want {
		t.Errorf("second load %+v", got["zstd"])
	}

	bad := []config.Image{
		{Name: "missing", File: "nope.img"},
		{Name: "escape", File: "../etc/passwd"},
		{Name: "wrong", File: "os.zstd", SHA256: strings.Repeat("0", 64)},
		{Name: "conflicting sidecars", File: "bad/x.img.zst"},
	}
	writeFile(t, filepath.Join(dir, "bad", "x.img.zst"), compressed(t, "zstd", raw))
	writeFile(t, filepath.Join(dir, "bad", "x.img.zst.sha256"), []byte(want))
	writeFile(t, filepath.Join(dir, "bad", "x.img.json"), []byte(`{"sha256":"`+strings.Repeat("1", 64)+`"}`))
	for _, b := range bad {
		if _, err := LoadImages(context.Background(), []config.Image{b}, ImageOptions{Dir: dir, Compute: true}); err == nil {
			t.Errorf("%s: no error", b.Name)
		}
	}
	if _, err := LoadImages(context.Background(), []config.Image{{Name: "nocompute", File: "os.zstd"}}, ImageOptions{Dir: dir}); err == nil {
		t.Error("compressed image without hash and compute off: no error")
	}
}

func TestIssue(t *testing.T) {
	scen := t.TempDir()
	writeFile(t, filepath.Join(scen, "box.yaml"), []byte("name: box\nsteps: []\n"))
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	images := map[string]Image{"os": {Name: "os", File: "dir/os 1.img.zst", SHA256: strings.Repeat("a", 64), Size: 4096}}
	rules := []config.Rule{
		{Name: "lte", Match: config.Match{Modules: []string{"lte"}}, Scenario: "box.yaml", Image: "os", After: "poweroff",
			Target: config.Target{Transport: "virtio", MinSize: 1 << 30}},
		{Name: "missing scenario", Match: config.Match{Product: "Broken"}, Scenario: "gone.yaml", Image: "os", After: "reboot"},
	}
	is, err := New(Options{Rules: rules, Images: images, ScenariosDir: scen, Key: priv, Now: func() time.Time { return now }, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := protocol.Hello{Nonce: "n-123", Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: "S1", Product: "GM-Box"}, Modules: []string{"lte"}}}
	iss, err := is.Issue(context.Background(), h, "52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	job, err := protocol.OpenJob(iss.Signed, pub)
	if err != nil {
		t.Fatalf("signed job does not open: %v", err)
	}
	ssum := sha256.Sum256([]byte("name: box\nsteps: []\n"))
	if job.Nonce != "n-123" || job.Device != (protocol.Identity{Serial: "S1", MAC: "52:54:00:00:00:01"}) ||
		job.Image.URL != "/images/dir/os%201.img.zst" || job.Image.Size != 4096 || job.Scenario.URL != "/scenarios/box.yaml" ||
		job.Scenario.SHA256 != hex.EncodeToString(ssum[:]) || job.Scenario.Size != int64(len("name: box\nsteps: []\n")) || job.After != "poweroff" || job.Target.MinSize != 1<<30 ||
		!job.ExpiresAt.Equal(now.Add(time.Hour)) || !strings.HasPrefix(job.RunID, "20261125T060000Z-") {
		t.Fatalf("job %+v", job)
	}
	iss2, _ := is.Issue(context.Background(), h, "52:54:00:00:00:01")
	if iss2.Job.RunID == job.RunID {
		t.Fatal("two jobs with the same run id")
	}
	if _, err := is.Issue(context.Background(), protocol.Hello{}, "52:54:00:00:00:01"); err == nil || !strings.Contains(err.Error(), ErrNoRule.Error()) {
		t.Fatalf("no rule: %v", err)
	}
	if err := is.CheckScenarios(); err == nil || !strings.Contains(err.Error(), "missing scenario") {
		t.Fatalf("CheckScenarios: %v", err)
	}
	if _, err := is.Issue(context.Background(), protocol.Hello{Inventory: protocol.Inventory{DMI: protocol.DMI{Product: "Broken"}}}, "52:54:00:00:00:01"); err == nil {
		t.Fatal("missing scenario issued")
	}
	unsigned, _ := New(Options{Rules: rules, Images: images, ScenariosDir: scen, ImagesURL: "http://nginx.line/img/"})
	iss, _ = unsigned.Issue(context.Background(), h, "52:54:00:00:00:01")
	if len(iss.Signed.Signature) != 0 || iss.Job.Image.URL != "http://nginx.line/img/dir/os%201.img.zst" {
		t.Fatalf("unsigned job %+v", iss)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"size": 10, "sha256": "` + strings.Repeat("ab", 32) + `"}`))
	f.Add([]byte(`{"size": -1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, size, err := ParseManifest(b)
		if err == nil && (sum != "" && len(sum) != 64 || size < 0) {
			t.Fatalf("accepted %q: sum %q size %d", b, sum, size)
		}
	})
}

func FuzzParseSidecar(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", 32) + "  os.img\n"))
	f.Add([]byte("# comment\n" + strings.Repeat("AB", 32) + " size=512MiB\n"))
	f.Add([]byte("size=-1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, size, err := ParseSidecar(bytes.NewReader(b))
		if err == nil && (len(sum) != 64 || size < 0) {
			t.Fatalf("accepted %q: sum %q size %d", b, sum, size)
		}
	})
}

// TestIssueFlashOptions: a rule's flash options (while_testing among them) are in the signed
// job, and a job whose while_testing was switched on the way no longer verifies.
func TestIssueFlashOptions(t *testing.T) {
	scen := t.TempDir()
	writeFile(t, filepath.Join(scen, "box.yaml"), []byte("name: box\nsteps: []\n"))
	pub, priv, _ := ed25519.GenerateKey(nil)
	images := map[string]Image{"os": {Name: "os", File: "os.img.zst", SHA256: strings.Repeat("a", 64), Size: 4096}}
	for _, fl := range []config.Flash{{}, {WhileTesting: true}, {WhileTesting: true, VerifyReadback: true, GrowLastPartition: true}} {
		rules := []config.Rule{{Name: "all", Scenario: "box.yaml", Image: "os", After: "reboot", Flash: fl}}
		is, err := New(Options{Rules: rules, Images: images, ScenariosDir: scen, Key: priv, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		iss, err := is.Issue(context.Background(), protocol.Hello{Nonce: "n"}, "52:54:00:00:00:01")
		if err != nil {
			t.Fatal(err)
		}
		job, err := protocol.OpenJob(iss.Signed, pub)
		if err != nil {
			t.Fatal(err)
		}
		want := protocol.FlashOptions{WhileTesting: fl.WhileTesting, VerifyReadback: fl.VerifyReadback, GrowLastPartition: fl.GrowLastPartition}
		if job.Flash != want {
			t.Errorf("rule flash %+v: signed job has %+v", fl, job.Flash)
		}
		forged := iss.Signed
		forged.Job = []byte(strings.Replace(string(forged.Job), `"flash":{`, `"flash":{"while_testing":`+fmt.Sprint(!fl.WhileTesting)+`,`, 1))
		if !fl.WhileTesting && !strings.Contains(string(iss.Signed.Job), `"flash":{`) {
			forged.Job = []byte(strings.Replace(string(iss.Signed.Job), `"after":`, `"flash":{"while_testing":true},"after":`, 1))
		}
		if string(forged.Job) == string(iss.Signed.Job) {
			t.Fatalf("test did not change the job: %s", iss.Signed.Job)
		}
		if _, err := protocol.OpenJob(forged, pub); err == nil {
			t.Errorf("a job with while_testing switched still verifies: %s", forged.Job)
		}
	}
}

// offers is a swarm that offers the listed image files.
type offers map[string]protocol.Swarm

func (o offers) Offer(file string) (protocol.Swarm, bool) { s, ok := o[file]; return s, ok }

func TestIssueSwarm(t *testing.T) {
	scen := t.TempDir()
	writeFile(t, filepath.Join(scen, "box.yaml"), []byte("name: box\nsteps: []\n"))
	pub, priv, _ := ed25519.GenerateKey(nil)
	images := map[string]Image{"os": {Name: "os", File: "os.img.zst", SHA256: strings.Repeat("a", 64), Size: 4096}}
	rules := []config.Rule{{Name: "all", Scenario: "box.yaml", Image: "os", After: "reboot"}}
	offer := protocol.Swarm{Torrent: "/images/os.img.zst.torrent", InfoHash: strings.Repeat("b", 40), LingerSeconds: 60}
	tests := []struct {
		name  string
		swarm SwarmOffers
		want  *protocol.Swarm
	}{
		{"no swarm: the old job", nil, nil},
		{"swarm without this image", offers{"other.img": offer}, nil},
		{"swarm with this image", offers{"os.img.zst": offer}, &offer},
	}
	for _, tt := range tests {
		is, err := New(Options{Rules: rules, Images: images, ScenariosDir: scen, Key: priv, TTL: time.Hour, Swarm: tt.swarm})
		if err != nil {
			t.Fatal(err)
		}
		iss, err := is.Issue(context.Background(), protocol.Hello{Nonce: "n"}, "52:54:00:00:00:01")
		if err != nil {
			t.Fatal(err)
		}
		job, err := protocol.OpenJob(iss.Signed, pub)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tt.want == nil && job.Swarm != nil:
			t.Errorf("%s: job has swarm %+v", tt.name, job.Swarm)
		case tt.want == nil && strings.Contains(string(iss.Signed.Job), "swarm"):
			t.Errorf("%s: signed job mentions swarm: %s", tt.name, iss.Signed.Job)
		case tt.want != nil && (job.Swarm == nil || *job.Swarm != *tt.want):
			t.Errorf("%s: signed job has swarm %+v, want %+v", tt.name, job.Swarm, tt.want)
		}
	}
}
