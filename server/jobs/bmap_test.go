package jobs

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/protocol/bmap"
	"github.com/flashline/flashline/server/config"
)

// TestBmapBesideImage: a .bmap beside an image (or beside its raw name, for a compressed
// one) goes into the signed job by its hash; one that cannot be the image's is an error.
func TestBmapBesideImage(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 64*4096)
	copy(raw[8192:], strings.Repeat("data", 2000))
	writeFile(t, filepath.Join(dir, "os.img"), raw)
	f, err := os.Open(filepath.Join(dir, "os.img"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := bmap.Create(f, 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	data := m.Marshal()
	sum := sha256.Sum256(data)
	writeFile(t, filepath.Join(dir, "os.img.bmap"), data)
	writeFile(t, filepath.Join(dir, "os.img.zst"), compressed(t, "zstd", raw))
	writeFile(t, filepath.Join(dir, "plain.img"), raw)

	imgs := []config.Image{{Name: "raw", File: "os.img"}, {Name: "zst", File: "os.img.zst"}, {Name: "none", File: "plain.img"}}
	got, err := LoadImages(context.Background(), imgs, ImageOptions{Dir: dir, Compute: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"raw", "zst"} {
		b := got[name].Bmap
		if b == nil || b.File != "os.img.bmap" || b.SHA256 != hex.EncodeToString(sum[:]) || b.Size != int64(len(data)) || b.Mapped != m.MappedBytes() {
			t.Errorf("%s: bmap %+v", name, b)
		}
	}
	if got["none"].Bmap != nil {
		t.Errorf("plain image has a bmap: %+v", got["none"].Bmap)
	}

	pub, priv, _ := ed25519.GenerateKey(nil)
	scen := t.TempDir()
	writeFile(t, filepath.Join(scen, "box.yaml"), []byte("name: box\n"))
	is, err := New(Options{Rules: []config.Rule{{Name: "all", Scenario: "box.yaml", Image: "zst", After: "reboot"}}, Images: got, ScenariosDir: scen, Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := is.Issue(context.Background(), protocol.Hello{}, "52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	job, err := protocol.OpenJob(iss.Signed, pub)
	if err != nil {
		t.Fatal(err)
	}
	if job.Bmap == nil || job.Bmap.URL != "/images/os.img.bmap" || job.Bmap.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("job bmap %+v", job.Bmap)
	}

	// A map for another image size, and a corrupt map, fail the image's load.
	writeFile(t, filepath.Join(dir, "short.img"), raw[:32*4096])
	writeFile(t, filepath.Join(dir, "short.img.bmap"), data)
	writeFile(t, filepath.Join(dir, "junk.img"), raw)
	writeFile(t, filepath.Join(dir, "junk.img.bmap"), []byte("<bmap version=\"2.0\">"))
	for _, im := range []config.Image{{Name: "short", File: "short.img"}, {Name: "junk", File: "junk.img"}} {
		if _, err := LoadImages(context.Background(), []config.Image{im}, ImageOptions{Dir: dir, Compute: true}); err == nil || !strings.Contains(err.Error(), ".bmap") {
			t.Errorf("%s: err %v", im.Name, err)
		}
	}
}
