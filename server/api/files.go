package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/flashline/flashline/server/config"
)

// fileServer serves the files of one directory with http.ServeContent (Range, If-Range,
// If-None-Match, If-Modified-Since). Names are checked twice: lexically (no "..", no hidden
// elements, no backslashes) and by opening through os.Root, which refuses any path, symlinks
// included, that resolves outside the directory.
type fileServer struct {
	s     *Server
	kind  string
	root  *os.Root
	ctype string
	// torrents answers <image>.torrent (images only, with the swarm on).
	torrents Torrents
	// count, when set, wraps the writer to count the bytes sent of one file (images only).
	count func(w http.ResponseWriter, name string) http.ResponseWriter
}

func newFileServer(s *Server, kind, dir, ctype string) (*fileServer, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%s directory: %w", kind, err)
	}
	return &fileServer{s: s, kind: kind, root: root, ctype: ctype}, nil
}

func (fsv *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("path")
	if err := config.CheckRelPath(name); err != nil {
		fsv.s.fail(w, r, http.StatusBadRequest, "bad_path", fmt.Sprintf("%s path: %v", fsv.kind, err))
		return
	}
	if fsv.torrents != nil {
		if file, ok := strings.CutSuffix(name, ".torrent"); ok {
			if !fsv.torrents.ServeTorrent(w, r, file) {
				fsv.s.fail(w, r, http.StatusNotFound, "not_found", fmt.Sprintf("no torrent of %q: the image is not in the swarm", file))
			}
			return
		}
	}
	if fsv.count != nil {
		w = fsv.count(w, name)
	}
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, holding this
	// goroutine and its connection forever; it is refused below as not a regular file.
	f, err := fsv.root.OpenFile(filepath.FromSlash(name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fsv.s.fail(w, r, http.StatusNotFound, "not_found", fmt.Sprintf("no %s %q", fsv.kind, name))
			return
		}
		// os.Root's refusal of a path that escapes (a symlink out of the directory).
		fsv.s.fail(w, r, http.StatusBadRequest, "bad_path", fmt.Sprintf("%s %q: not inside its directory", fsv.kind, name), "err", err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		fsv.s.fail(w, r, http.StatusNotFound, "not_found", fmt.Sprintf("no %s %q", fsv.kind, name))
		return
	}
	h := w.Header()
	h.Set("Content-Type", fsv.ctype)
	// A strong validator from size and modification time (as nginx does): cheap, and it
	// changes whenever the file is replaced, so a resumed download never mixes two versions.
	h.Set("ETag", `"`+strconv.FormatInt(fi.Size(), 16)+"-"+strconv.FormatInt(fi.ModTime().UnixNano(), 16)+`"`)
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
