package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flashline/flashline/agent/flash"
	"github.com/flashline/flashline/agent/membudget"
	"github.com/flashline/flashline/internal/human"
)

// cmdFlash is `flashline-agent flash [flags] SOURCE TARGET` (a contract, see design.md).
func cmdFlash(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("flash", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var opts flash.Options
	var size string
	fs.StringVar(&opts.SHA256, "sha256", "", "SHA-256 (hex) of the decompressed image; the flash fails unless it matches")
	fs.StringVar(&size, "size", "", "exact length of the decompressed image in bytes")
	fs.BoolVar(&opts.Force, "force", false, "allow removable media")
	fs.BoolVar(&opts.VerifyReadback, "verify-readback", false, "re-read the written image and compare its hash")
	fs.BoolVar(&opts.GrowLastPartition, "grow", false, "grow the last GPT partition to the end of the target")
	fs.DurationVar(&opts.StallTimeout, "stall-timeout", 30*time.Second, "HTTP: treat this long without data as a dropped connection")
	fs.IntVar(&opts.Retries, "retries", 5, "HTTP: consecutive failed reconnects before giving up")
	fs.DurationVar(&opts.RetryBackoff, "retry-backoff", time.Second, "HTTP: wait before the first retry (doubles up to 16x)")
	fs.BoolVar(&opts.NoDirect, "no-direct", false, "do not use O_DIRECT")
	fs.BoolVar(&opts.NoZeroSkip, "no-zero-skip", false, "write zero blocks even where the target reads back zeros")
	fs.IntVar(&opts.BufferSize, "buffer-size", 0, "pipeline buffer size in bytes (default 4 MiB, 1 MiB for xz)")
	fs.IntVar(&opts.Buffers, "buffers", 0, "number of pipeline buffers (default 4)")
	fs.IntVar(&opts.DecodeThreads, "threads", 0, "decoder threads for zstd and xz (default: all cores for xz, all but one for zstd, whose hashing takes a core; 1 saves memory with xz)")
	fs.IntVar(&opts.Writers, "writers", 0, "concurrent writes in flight (default 2 on a device, 1 on a file)")
	memMiB := fs.Int64("memory", flash.DefaultMemory>>20, "memory budget in MiB; xz decodes blocks in parallel only where that fits it (xz -6 images need about 160)")
	verbose := fs.Bool("v", false, "log retries and warnings to stderr")
	bmapSrc := fs.String("bmap", "", "bmaptool block map (.bmap FILE or URL): write only its mapped ranges, each checked against its SHA-256 (replaces --sha256)")
	var sw flash.Swarm
	var peers peerList
	fs.StringVar(&sw.Torrent, "torrent", "", "get the image from its BitTorrent swarm: the .torrent (URL or FILE) of SOURCE, which stays the web seed and fallback")
	fs.StringVar(&sw.InfoHash, "info-hash", "", "with --torrent: refuse a .torrent whose v1 infohash (hex) differs")
	fs.DurationVar(&sw.Linger, "linger", 0, "with --torrent: keep seeding this long after a verified flash (ends early when no peer wants anything)")
	fs.Var(&peers, "peer", "with --torrent: a peer HOST:PORT to connect to besides the tracker's (repeatable)")
	fs.IntVar(&sw.Port, "peer-port", envInt("FLASHLINE_PEER_PORT"), "with --torrent: TCP port for peers (default $FLASHLINE_PEER_PORT, else any free port)")
	windowMiB := fs.Int64("swarm-window", 0, "with --torrent: MiB of pieces held in memory (default 32; at least two pieces)")
	fs.StringVar(&sw.Spool, "swarm-spool", "", "with --torrent: where pieces past the memory window are kept to serve: auto (the disk after the image, or a file beside a file target), off, or a scratch FILE (default auto)")
	fs.DurationVar(&sw.SeedQuiet, "swarm-seed-quiet", 0, "with --torrent: ask the server's seed only once no other peer has had the next piece this long (default 1.5s; negative: like any peer)")
	fs.DurationVar(&sw.Stall, "swarm-stall", 0, "with --torrent: go on over HTTP after the swarm sends nothing this long (default 5s)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: flashline-agent flash [--sha256 HEX | --bmap FILE|URL] [--size BYTES] [--torrent URL|FILE [--linger D]] [flags] SOURCE TARGET\n\nSOURCE is an http(s) URL, a file or - (stdin); TARGET a block device or a regular file.\nWith --torrent the image comes from its BitTorrent swarm, SOURCE being its web seed and fallback.\n\nFlags:")
		fs.PrintDefaults()
	}
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0]) // flags may also follow the operands
		rest = rest[1:]
	}
	if len(pos) != 2 {
		fmt.Fprintln(os.Stderr, "flash: need SOURCE and TARGET")
		fs.Usage()
		return 2
	}
	opts.Source, opts.Target = pos[0], pos[1]
	if size != "" {
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "flash: --size %q is not a positive number of bytes\n", size)
			return 2
		}
		opts.Size = n
	}
	if opts.Retries == 0 {
		opts.Retries = -1 // the flag's 0 means "no retries", the library's 0 means default
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *memMiB < 32 {
		fmt.Fprintf(os.Stderr, "flash: --memory %d: the agent needs at least 32 MiB\n", *memMiB)
		return 2
	}
	opts.Memory = *memMiB << 20
	mem, err := membudget.For(opts.Memory, os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flash: --memory: %v\n", err)
		return 2
	}
	applyBudget := func() {
		// The swarm's window and client come on top of the pipeline's budget.
		if mem.MemoryLimit >= 0 {
			mem.MemoryLimit += flash.SwarmMemory(opts.Swarm)
		}
		membudget.Apply(mem)
	}
	if *bmapSrc != "" {
		m, err := flash.LoadBmap(ctx, *bmapSrc, "", nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		opts.Bmap = m
	}
	if sw.Torrent != "" {
		sw.Peers = peers
		sw.Window = *windowMiB << 20
		if sw.Spool == "auto" {
			sw.Spool = ""
		}
		opts.Swarm = &sw
	} else if sw.Linger != 0 || len(peers) > 0 || sw.InfoHash != "" {
		fmt.Fprintln(os.Stderr, "flash: --linger, --peer and --info-hash need --torrent")
		return 2
	}
	applyBudget()
	term := isTerminal(os.Stderr)
	if term {
		opts.Progress = func(p flash.Progress) { fmt.Fprint(os.Stderr, "\r"+progressLine(p)+"\033[K") }
	}
	res, err := flash.Write(ctx, opts)
	if term {
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(os.Stderr, "flash: warning:", w)
	}
	check := "sha256 " + res.SHA256
	if opts.Bmap != nil {
		check = fmt.Sprintf("%d bmap ranges checked, %s unmapped not written,", len(opts.Bmap.Ranges), human.Bytes(res.Unmapped))
	}
	fmt.Fprintf(os.Stderr, "flash: wrote %d bytes (%s) %s in %.1fs (%s/s), %d resumes, %s zero bytes skipped\n",
		res.Bytes, res.Format, check, res.Duration.Seconds(),
		human.Bytes(int64(float64(res.Bytes)/max(res.Duration.Seconds(), 1e-9))), res.Resumes, human.Bytes(res.ZeroSkipped))
	if s := res.Swarm; s.Used {
		spool := "no spool"
		if s.Spool != "" {
			spool = human.Bytes(s.Spooled) + " spooled in " + s.Spool
		}
		fmt.Fprintf(os.Stderr, "flash: swarm: %s from peers (%s of it from the server's seed), %s over HTTP, %s served to peers, %d peers banned, lingered %.1fs, %s, seed asked again %d times\n",
			human.Bytes(s.FromPeers), human.Bytes(s.FromServer), human.Bytes(s.FromHTTP), human.Bytes(s.Uploaded), s.BadPeers, s.Lingered.Seconds(), spool, s.SeedOpens)
	}
	return 0
}

// peerList is a repeatable HOST:PORT flag.
type peerList []string

func (p *peerList) String() string { return strings.Join(*p, ",") }
func (p *peerList) Set(v string) error {
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			*p = append(*p, a)
		}
	}
	return nil
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func progressLine(p flash.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %s", p.Phase, human.Bytes(p.Written))
	if p.Total > 0 {
		fmt.Fprintf(&b, " / %s (%d%%)", human.Bytes(p.Total), p.Written*100/p.Total)
	}
	fmt.Fprintf(&b, "  %s/s", human.Bytes(int64(p.Rate)))
	if p.ETA > 0 {
		fmt.Fprintf(&b, "  ETA %s", p.ETA.Round(time.Second))
	}
	return b.String()
}
