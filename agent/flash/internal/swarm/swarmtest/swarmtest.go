// Package swarmtest runs real BitTorrent seeds on loopback for the swarm source's tests:
// anacrolix/torrent clients with no tracker and no DHT, which the downloader is told about
// directly, one of them (when asked) serving corrupt piece data.
package swarmtest

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"
)

// Name is the torrent's file name.
const Name = "image.img.gz"

// Metainfo returns the .torrent of data in pieces of pieceLen bytes, with webSeed as its
// BEP 19 url-list when not "".
func Metainfo(t testing.TB, data []byte, pieceLen int64, webSeed string) []byte {
	t.Helper()
	info := metainfo.Info{Name: Name, Length: int64(len(data)), PieceLength: pieceLen}
	if err := info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}); err != nil {
		t.Fatal(err)
	}
	mi := metainfo.MetaInfo{InfoBytes: bencode.MustMarshal(info), CreationDate: 1}
	if webSeed != "" {
		mi.UrlList = []string{webSeed}
	}
	var b bytes.Buffer
	if err := mi.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// SeedOptions shape a seed.
type SeedOptions struct {
	Host string // loopback address to listen on (default 127.0.0.1); another one lets a test ban one seed without the others
	// Corrupt makes every piece the seed serves differ from the torrent's in one byte; the
	// seed claims to have all pieces all the same.
	Corrupt bool
	// UploadRate caps the seed's upload, bytes/s (0: none), to keep a transfer running
	// long enough for a test to cut it.
	UploadRate int
}

// Seed is a running seed.
type Seed struct {
	Addr   string
	Client *torrent.Client
}

// StartSeed seeds data (described by mi) until the test ends or Close.
func StartSeed(t testing.TB, data, mi []byte, o SeedOptions) *Seed {
	t.Helper()
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	m, err := metainfo.Load(bytes.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := torrent.NewDefaultClientConfig()
	cfg.NoDHT, cfg.DisableUTP, cfg.DisableWebtorrent, cfg.DisableWebseeds = true, true, true, true
	cfg.NoDefaultPortForwarding, cfg.DisableIPv6, cfg.Seed = true, true, true
	cfg.ListenHost = func(string) string { return o.Host }
	cfg.ListenPort = 0
	cfg.DataDir = dir
	// As the agent and the line server's seed do: see swarm.Open.
	cfg.MaxAllocPeerRequestDataPerConn = 16 << 20
	cfg.Logger = alog.Default.FilterLevel(alog.Critical)
	if o.UploadRate > 0 {
		cfg.UploadRateLimiter = rate.NewLimiter(rate.Limit(o.UploadRate), 0) // the library sets the burst to a request's size
	}
	// Connections it dialled would come from 127.0.0.1 and get that address banned: a seed
	// only accepts.
	cfg.DialForPeerConns = false
	var st storage.ClientImpl
	if o.Corrupt {
		st = &corrupt{data: data}
	} else {
		if err := os.WriteFile(filepath.Join(dir, Name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		st = storage.NewFileOpts(storage.NewFileClientOpts{ClientBaseDir: dir, PieceCompletion: storage.NewMapPieceCompletion()})
	}
	cfg.DefaultStorage = st
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	tor, err := cl.AddTorrent(m)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Corrupt {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := tor.VerifyDataContext(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tor.Complete().On():
		case <-ctx.Done():
			t.Fatal("seed did not verify its data")
		}
	}
	return &Seed{Addr: net.JoinHostPort(o.Host, strconv.Itoa(cl.LocalPort())), Client: cl}
}

// Close stops the seed, as a device that is unplugged.
func (s *Seed) Close() { s.Client.Close() }
