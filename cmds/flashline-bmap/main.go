// Command flashline-bmap writes bmaptool's block map (.bmap, format 2.0 with SHA-256) of a
// raw image, for `flashline-agent flash --bmap` and for the line server, which sends
// `<image>.bmap` found beside an image with the job.
//
//	flashline-bmap [-o IMAGE.bmap] [-block-size 4096] IMAGE
//
// The map lists the data extents SEEK_DATA/SEEK_HOLE report, less the all-zero blocks in
// them, so an image copied without holes maps as small as a sparse one.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/flashline/flashline/protocol/bmap"
)

func main() {
	out := flag.String("o", "", "file to write (default IMAGE.bmap; - for stdout)")
	bs := flag.Int64("block-size", bmap.DefaultBlockSize, "block size in bytes (a power of two, 512 or more)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: flashline-bmap [-o FILE] [-block-size N] IMAGE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out, *bs); err != nil {
		fmt.Fprintln(os.Stderr, "flashline-bmap:", err)
		os.Exit(1)
	}
}

func run(image, out string, blockSize int64) error {
	if blockSize < 512 || blockSize&(blockSize-1) != 0 {
		return fmt.Errorf("-block-size %d: want a power of two, 512 or more", blockSize)
	}
	f, err := os.Open(image)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := bmap.Create(f, blockSize)
	if err != nil {
		return fmt.Errorf("map %s: %w", image, err)
	}
	data := m.Marshal()
	if out == "" {
		out = image + ".bmap"
	}
	if out == "-" {
		_, err = os.Stdout.Write(data)
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "flashline-bmap: %s: %d of %d blocks mapped (%.1f%%, %d ranges) -> %s\n",
		image, m.MappedBlocks, m.BlocksCount, 100*float64(m.MappedBlocks)/float64(m.BlocksCount), len(m.Ranges), out)
	return nil
}
