// Package xzblock writes .xz files the way `xz -T N` does: the input is cut into blocks that
// are compressed independently (on several cores) and every block header records its
// compressed and uncompressed size. Decoders can then hand blocks to parallel workers, which
// is what the agent's flash pipeline does; ulikunitz/xz's own Writer leaves those sizes out.
package xzblock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"runtime"

	"github.com/ulikunitz/xz/lzma"

	"github.com/flashline/flashline/internal/xzformat"
)

// Options tune the writer. The zero value is fine.
type Options struct {
	// BlockSize is the uncompressed size of each block; default 8 MiB.
	BlockSize int
	// DictCap is the LZMA2 dictionary size, at most BlockSize; default min(BlockSize, 8 MiB).
	DictCap int
	// Workers compress blocks in parallel; default GOMAXPROCS.
	Workers int
}

func (o Options) fill() Options {
	if o.BlockSize <= 0 {
		o.BlockSize = 8 << 20
	}
	if o.DictCap <= 0 || o.DictCap > o.BlockSize {
		o.DictCap = min(o.BlockSize, 8<<20)
	}
	if o.DictCap < 4096 {
		o.DictCap = 4096
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

var crc64Table = crc64.MakeTable(crc64.ECMA)

// block is one compressed block ready to be written.
type block struct {
	data         []byte // header + compressed data + padding + check
	unpadded     int64  // header + compressed data + check (what the index records)
	uncompressed int64
	err          error
}

// Compress reads r to its end and writes it to w as a multi-block .xz stream.
func Compress(ctx context.Context, w io.Writer, r io.Reader, o Options) error {
	o = o.fill()
	bw := bufio.NewWriterSize(w, 1<<20)
	flags := []byte{0x00, xzformat.CheckCRC64}
	if _, err := bw.Write(append(append([]byte(xzformat.HeaderMagic), flags...), le32(crc32.ChecksumIEEE(flags))...)); err != nil {
		return fmt.Errorf("xz stream header: %w", err)
	}

	// Blocks are compressed by workers and written in input order: each input chunk gets a
	// result channel, queued in order, so at most Workers+1 blocks are in memory.
	queue := make(chan chan block, o.Workers)
	readErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(queue)
		sem := make(chan struct{}, o.Workers)
		for {
			buf := make([]byte, o.BlockSize)
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				res := make(chan block, 1)
				select {
				case queue <- res:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
				sem <- struct{}{}
				go func(p []byte) {
					defer func() { <-sem }()
					res <- compressBlock(p, o.DictCap)
				}(buf[:n])
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- fmt.Errorf("read input: %w", err)
				return
			}
			if ctx.Err() != nil {
				readErr <- ctx.Err()
				return
			}
		}
	}()

	type record struct{ unpadded, uncompressed int64 }
	var records []record
	var werr error
	for res := range queue {
		b := <-res
		if werr != nil {
			continue // drain so the reader goroutine can finish
		}
		if b.err != nil {
			werr = b.err
			cancel()
			continue
		}
		if _, err := bw.Write(b.data); err != nil {
			werr = fmt.Errorf("write block: %w", err)
			cancel()
			continue
		}
		records = append(records, record{b.unpadded, b.uncompressed})
	}
	if err := <-readErr; err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return werr
	}

	// Index: indicator, record count, records, padding, CRC32.
	var idx bytes.Buffer
	idx.WriteByte(0x00)
	idx.Write(xzformat.AppendUvarint(nil, uint64(len(records))))
	for _, rec := range records {
		idx.Write(xzformat.AppendUvarint(nil, uint64(rec.unpadded)))
		idx.Write(xzformat.AppendUvarint(nil, uint64(rec.uncompressed)))
	}
	for idx.Len()%4 != 0 {
		idx.WriteByte(0)
	}
	idx.Write(le32(crc32.ChecksumIEEE(idx.Bytes())))

	// Footer: CRC32 of (backward size, flags), backward size, flags, magic.
	tail := append(le32(uint32(idx.Len()/4-1)), flags...)
	footer := append(append(le32(crc32.ChecksumIEEE(tail)), tail...), xzformat.FooterMagic...)
	if _, err := bw.Write(idx.Bytes()); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if _, err := bw.Write(footer); err != nil {
		return fmt.Errorf("write footer: %w", err)
	}
	return bw.Flush()
}

// compressBlock compresses p as one LZMA2 block with a header that states both sizes.
func compressBlock(p []byte, dictCap int) block {
	var comp bytes.Buffer
	lw, err := lzma.Writer2Config{DictCap: dictCap}.NewWriter2(&comp)
	if err != nil {
		return block{err: fmt.Errorf("lzma2 writer: %w", err)}
	}
	if _, err := lw.Write(p); err != nil {
		return block{err: fmt.Errorf("lzma2 compress: %w", err)}
	}
	if err := lw.Close(); err != nil {
		return block{err: fmt.Errorf("lzma2 close: %w", err)}
	}

	// Block header: size byte, flags (1 filter, both sizes present), sizes, LZMA2 filter
	// flags (id 0x21, one property byte: the dictionary size), padding, CRC32.
	var h bytes.Buffer
	h.WriteByte(0) // size placeholder
	h.WriteByte(0x00 | 0x40 | 0x80)
	h.Write(xzformat.AppendUvarint(nil, uint64(comp.Len())))
	h.Write(xzformat.AppendUvarint(nil, uint64(len(p))))
	h.Write([]byte{0x21, 0x01, lzma.EncodeDictCap(int64(dictCap))})
	for (h.Len()+4)%4 != 0 {
		h.WriteByte(0)
	}
	hb := h.Bytes()
	hb[0] = byte((len(hb)+4)/4 - 1)
	if len(hb)+4 > 1024 {
		return block{err: errors.New("xz block header too long")}
	}
	hb = append(hb, le32(crc32.ChecksumIEEE(hb))...)

	out := make([]byte, 0, len(hb)+comp.Len()+3+8)
	out = append(out, hb...)
	out = append(out, comp.Bytes()...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	var check [8]byte
	binary.LittleEndian.PutUint64(check[:], crc64.Checksum(p, crc64Table))
	out = append(out, check[:]...)
	return block{
		data:         out,
		unpadded:     int64(len(hb) + comp.Len() + 8),
		uncompressed: int64(len(p)),
	}
}

func le32(v uint32) []byte {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return b[:]
}
