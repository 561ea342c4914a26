package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage/initramfs"
	"github.com/ulikunitz/xz"
)

// compressedCPIO is an initramfs.WriteOpener writing a compressed newc archive, the format
// the kernel unpacks (gzip always; xz when the kernel has CONFIG_RD_XZ, as Debian's does).
type compressedCPIO struct {
	path   string
	format string // "zstd", "xz" or "gzip"
	// fast trades size for build time (test images built per test run).
	fast bool
}

var _ initramfs.WriteOpener = compressedCPIO{}

type cpioOut struct {
	cpio.RecordWriter
	f   *os.File
	buf *bufio.Writer
	zw  io.WriteCloser
}

// OpenWriter implements initramfs.WriteOpener.
func (c compressedCPIO) OpenWriter() (initramfs.Writer, error) {
	f, err := os.Create(c.path)
	if err != nil {
		return nil, err
	}
	buf := bufio.NewWriterSize(f, 1<<20)
	var zw io.WriteCloser
	switch c.format {
	case "gzip":
		lvl := gzip.BestCompression
		if c.fast {
			lvl = gzip.BestSpeed
		}
		zw, err = gzip.NewWriterLevel(buf, lvl)
	case "zstd":
		// The kernel's zstd decoder (CONFIG_RD_ZSTD) takes the 8 MiB window of level 19 and
		// unpacks several times faster than xz. The zstd tool compresses about 20% better
		// than the pure Go encoder, so it is used when installed.
		level, goLevel := "-19", zstd.SpeedBestCompression
		if c.fast {
			level, goLevel = "-3", zstd.SpeedDefault
		}
		if p, lerr := exec.LookPath("zstd"); lerr == nil {
			zw, err = startTool(buf, p, level, "-q", "-c", "-")
		} else {
			zw, err = zstd.NewWriter(buf, zstd.WithEncoderLevel(goLevel), zstd.WithEncoderCRC(true))
		}
	case "xz":
		// (no fast mode: use zstd for quick builds)
		// The kernel's XZ decoder wants CRC32 (or none); the x86 BCJ filter of the xz tool
		// shrinks the Go binaries further.
		if p, lerr := exec.LookPath("xz"); lerr == nil {
			zw, err = startTool(buf, p, "--check=crc32", "--x86", "--lzma2=preset=9,dict=8MiB", "-q", "-c", "-")
		} else {
			zw, err = xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 8 << 20}.NewWriter(buf)
		}
	default:
		err = fmt.Errorf("unknown compression %q (gzip, zstd or xz)", c.format)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &cpioOut{RecordWriter: cpio.Newc.Writer(zw), f: f, buf: buf, zw: zw}, nil
}

// Finish writes the trailer and closes everything.
func (o *cpioOut) Finish() error {
	err := cpio.WriteTrailer(o)
	if cerr := o.zw.Close(); err == nil {
		err = cerr
	}
	if ferr := o.buf.Flush(); err == nil {
		err = ferr
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// tool is a compressor run as a child process: what is written goes to its stdin, its stdout
// to w.
type tool struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startTool(w io.Writer, path string, args ...string) (io.WriteCloser, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	return &tool{cmd: cmd, stdin: in}, nil
}

func (t *tool) Write(p []byte) (int, error) { return t.stdin.Write(p) }

func (t *tool) Close() error {
	err := t.stdin.Close()
	if werr := t.cmd.Wait(); werr != nil {
		return fmt.Errorf("%s: %w", t.cmd.Path, werr)
	}
	return err
}
