package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/flashline/flashline/protocol/bmap"
)

// LoadBmap reads and parses a .bmap from an http(s) URL or a file. When sha256Hex is set the
// file must have that SHA-256 (a signed job names the map by its hash, as it does the
// image). client may be nil.
func LoadBmap(ctx context.Context, src, sha256Hex string, client *http.Client) (*bmap.Map, error) {
	var data []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		data, err = fetchBmap(ctx, src, client)
	} else {
		data, err = readBmapFile(src)
	}
	if err != nil {
		return nil, fail("bmap %s: %w", src, err)
	}
	if sha256Hex != "" {
		got := sha256.Sum256(data)
		if !strings.EqualFold(hex.EncodeToString(got[:]), sha256Hex) {
			return nil, fail("bmap %s: sha256 %x, want %s", src, got, strings.ToLower(sha256Hex))
		}
	}
	m, err := bmap.Parse(data)
	if err != nil {
		return nil, fail("bmap %s: %w", src, err)
	}
	return m, nil
}

func readBmapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

func fetchBmap(ctx context.Context, url string, client *http.Client) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return readLimited(resp.Body)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, bmap.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > bmap.MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", bmap.MaxFileSize)
	}
	return data, nil
}
