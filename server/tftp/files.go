package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// errForbidden marks a name that is refused for safety rather than missing.
var errForbidden = errors.New("forbidden path")

// cleanName turns the name a client asked for into a slash-separated path
// relative to the served root, or fails with errForbidden.
//
// PXE firmware and pxelinux send names like "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff",
// sometimes with a leading "/", some Windows-minded ROMs with backslashes, and
// configurations written for chrooted tftp-hpa may carry the root directory
// itself ("/srv/tftp/pxelinux.0"). All of those are accepted. Any ".."
// component is refused outright, even one that would stay inside the root:
// no client needs it and it is the usual probe.
func cleanName(rootDir, name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL in name", errForbidden)
	}
	name = strings.ReplaceAll(name, `\`, "/")
	if rootDir != "" {
		prefix := strings.TrimSuffix(rootDir, "/") + "/"
		if strings.HasPrefix(name, prefix) && prefix != "/" {
			name = name[len(prefix):]
		}
	}
	name = strings.TrimLeft(name, "/")
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q has a .. component", errForbidden, name)
		}
	}
	name = path.Clean(name)
	if name == "." || name == "" {
		return "", fmt.Errorf("%w: no file named", errForbidden)
	}
	return name, nil
}

// source is one file being sent.
type source struct {
	r    io.Reader
	size int64 // -1 when unknown
	c    io.Closer
	name string // cleaned, relative to the root
}

func (s source) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}

// open finds name among the virtual files first, then under the root.
// The returned error wraps fs.ErrNotExist or errForbidden so that the
// caller can pick the TFTP error code.
func (s *Server) open(ctx context.Context, name string) (source, error) {
	rootDir := ""
	if s.root != nil {
		rootDir = s.cfg.Root
	}
	clean, err := cleanName(rootDir, name)
	if err != nil {
		return source{}, err
	}
	if s.virtual != nil {
		b, err := s.virtual(ctx, clean)
		switch {
		case err == nil:
			return source{r: bytes.NewReader(b), size: int64(len(b)), name: clean}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return source{}, fmt.Errorf("virtual file %s: %w", clean, err)
		}
	}
	if s.root == nil {
		return source{}, fmt.Errorf("%s: %w", clean, fs.ErrNotExist)
	}
	// O_NONBLOCK so that a FIFO placed in the root cannot hang a transfer
	// goroutine in open(2); it is refused below as not a regular file.
	// os.Root refuses symlinks and ".." that lead outside the root.
	f, err := s.root.OpenFile(clean, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return source{}, fmt.Errorf("%s: %w", clean, fs.ErrNotExist)
		}
		return source{}, fmt.Errorf("%w: %v", errForbidden, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return source{}, fmt.Errorf("stat %s: %w", clean, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return source{}, fmt.Errorf("%w: %s is not a regular file", errForbidden, clean)
	}
	return source{r: f, size: st.Size(), c: f, name: clean}, nil
}
