package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// transfer is one file being sent to one client.
type transfer struct {
	conn    *net.UDPConn // connected to the client
	log     *slog.Logger
	src     source
	timeout time.Duration
	retries int
	// maxIdle bounds the time without progress, whatever timeout was negotiated.
	maxIdle  time.Duration
	progress time.Time // when the client last moved the transfer forward
	blksize  int
	window   int
	sent     int64 // bytes the client has acknowledged
}

// negotiate applies the options the client asked for and returns those
// accepted, in the client's order, for the OACK. Options we do not know or
// whose values are out of range are left out, as RFC 2347 allows; an empty
// result means no OACK is sent and the transfer starts with block 1.
func (t *transfer) negotiate(opts []option, maxBlk, maxWin int) []option {
	var out []option
	seen := make(map[string]bool, len(opts))
	for _, o := range opts {
		if seen[o.name] {
			continue
		}
		seen[o.name] = true
		v, err := strconv.Atoi(o.value)
		switch o.name {
		case "blksize":
			if err != nil || v < minBlockSize {
				continue
			}
			t.blksize = min(v, maxBlk)
			out = append(out, option{o.name, strconv.Itoa(t.blksize)})
		case "tsize":
			// The client sends 0 and we answer the size; unknown
			// for netascii, where the option is then left out.
			if t.src.size < 0 {
				continue
			}
			out = append(out, option{o.name, strconv.FormatInt(t.src.size, 10)})
		case "timeout":
			if err != nil || v < 1 || v > 255 {
				continue
			}
			t.timeout = time.Duration(v) * time.Second
			out = append(out, option{o.name, strconv.Itoa(v)})
		case "windowsize":
			if err != nil || v < 1 || v > 65535 {
				continue
			}
			t.window = min(v, maxWin)
			out = append(out, option{o.name, strconv.Itoa(t.window)})
		}
	}
	return out
}

var errGaveUp = errors.New("no acknowledgement")

// clientError is an ERROR packet from the client ending the transfer.
type clientError struct {
	code uint16
	msg  string
}

func (e *clientError) Error() string {
	return fmt.Sprintf("client ended the transfer with error %d: %s", e.code, e.msg)
}

// run sends the OACK when there is one, then the file.
func (t *transfer) run(ctx context.Context, oack []option) error {
	// Unblock a pending read when the server stops.
	stop := context.AfterFunc(ctx, func() { t.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	t.progress = time.Now()
	err := t.send(ctx, oack)
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errLifetime) {
			t.conn.Write(appendError(nil, errNotDefined, "transfer took too long"))
			return cause
		}
		t.conn.Write(appendError(nil, errNotDefined, "server shutting down"))
		return ctx.Err()
	}
	return err
}

func (t *transfer) send(ctx context.Context, oack []option) error {
	// ACK and ERROR packets are small; a longer error message is cut,
	// which parseReply tolerates.
	rbuf := make([]byte, 516)
	if len(oack) > 0 {
		if err := t.sendOACK(ctx, appendOACK(nil, oack), rbuf); err != nil {
			return fmt.Errorf("option negotiation: %w", err)
		}
	}

	// ring holds the blocks of the current window, each with room for the
	// 4-byte DATA header in front, so a retransmission re-sends the same
	// buffer without re-reading the source.
	ring := make([][]byte, t.window)
	var (
		acked  uint64 // highest block number the client acknowledged
		loaded uint64 // highest block number read from the source
		eof    uint64 // number of the last, short block once it is read
		bytes  []int64
		tries  int
	)
	bytes = make([]int64, t.window) // payload size of each ring slot
	for {
		last := acked + uint64(t.window)
		if eof != 0 && last > eof {
			last = eof
		}
		for b := acked + 1; b <= last; b++ {
			slot := (b - 1) % uint64(t.window)
			if b > loaded {
				if ring[slot] == nil {
					ring[slot] = make([]byte, 4+t.blksize)
				}
				buf := ring[slot][:4+t.blksize]
				n, err := io.ReadFull(t.src.r, buf[4:])
				if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.conn.Write(appendError(nil, errNotDefined, "read error"))
					return fmt.Errorf("read block %d: %w", b, err)
				}
				ring[slot] = buf[:4+n]
				bytes[slot] = int64(n)
				loaded = b
				if n < t.blksize {
					eof, last = b, b
				}
			}
			// Block numbers wrap to 0 after 65535, as tftp-hpa, iPXE
			// and pxelinux expect for large files.
			putDataHeader(ring[slot], uint16(b))
			if _, err := t.conn.Write(ring[slot]); err != nil {
				return fmt.Errorf("send block %d: %w", b, err)
			}
		}

		got, err := t.awaitAck(ctx, rbuf, acked, last)
		if err != nil {
			return err
		}
		if got == acked {
			tries++
			if t.idle() {
				t.conn.Write(appendError(nil, errNotDefined, "no acknowledgement: transfer ended"))
				return fmt.Errorf("block %d: %w for %s", acked+1, errGaveUp, t.maxIdle)
			}
			if tries > t.retries {
				return fmt.Errorf("block %d: %w after %d tries", acked+1, errGaveUp, tries)
			}
			t.log.Debug("retransmitting", "from_block", acked+1, "to_block", last, "try", tries)
			continue
		}
		tries = 0
		t.progress = time.Now()
		for b := acked + 1; b <= got; b++ {
			t.sent += bytes[(b-1)%uint64(t.window)]
		}
		acked = got
		if eof != 0 && acked == eof {
			return nil
		}
	}
}

// awaitAck waits one timeout for an ACK that moves the window forward and
// returns the new highest acknowledged block, or acked itself on timeout.
// Duplicate and stale ACKs are ignored rather than answered: answering them
// is the "Sorcerer's Apprentice" bug of RFC 1350 that doubles the traffic.
func (t *transfer) awaitAck(ctx context.Context, rbuf []byte, acked, lastSent uint64) (uint64, error) {
	deadline := time.Now().Add(t.timeout)
	if t.maxIdle > 0 {
		if idle := t.progress.Add(t.maxIdle); idle.Before(deadline) {
			deadline = idle
		}
	}
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	for {
		n, err := t.conn.Read(rbuf)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return acked, nil
			}
			return 0, fmt.Errorf("receive: %w", err)
		}
		r, err := parseReply(rbuf[:n])
		if err != nil {
			t.log.Debug("ignored malformed packet", "err", err)
			continue
		}
		if r.op == opERROR {
			return 0, &clientError{code: r.code, msg: r.msg}
		}
		// Map the 16-bit block number onto the window.
		d := uint64(r.block - uint16(acked))
		if d == 0 || d > lastSent-acked {
			continue
		}
		return acked + d, nil
	}
}

// idle reports whether the transfer has made no progress for maxIdle.
func (t *transfer) idle() bool {
	return t.maxIdle > 0 && time.Since(t.progress) >= t.maxIdle
}

// sendOACK sends the option acknowledgement until the client answers it with
// ACK 0.
func (t *transfer) sendOACK(ctx context.Context, pkt, rbuf []byte) error {
	for tries := 0; tries <= t.retries; tries++ {
		if _, err := t.conn.Write(pkt); err != nil {
			return fmt.Errorf("send OACK: %w", err)
		}
		// ACK 0 is the block after 0xffff in awaitAck's wrapping
		// arithmetic, so it is the only ACK that moves this "window".
		got, err := t.awaitAck(ctx, rbuf, 0xffff, 0x10000)
		if err != nil {
			return err
		}
		if got == 0x10000 {
			return nil
		}
		if t.idle() {
			break
		}
	}
	return fmt.Errorf("OACK: %w", errGaveUp)
}
