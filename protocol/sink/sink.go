// Package sink is the TCP throughput sink the wifi.throughput check pushes
// to: it reads and discards a connection's data until the sender closes its
// write side, then answers with the number of bytes received (8 bytes, big
// endian) so that the sender measures what crossed the link rather than what
// it managed to queue. The line server (or the test AP) runs it.
package sink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Serve accepts connections on ln until ctx ends. Each connection may last
// at most maxConn (0: 5 minutes) so that a stuck sender cannot pin it.
func Serve(ctx context.Context, ln net.Listener, maxConn time.Duration, log *slog.Logger) error {
	if maxConn == 0 {
		maxConn = 5 * time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sink: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := handle(ctx, c, maxConn)
			log.Info("sink: connection done", "peer", c.RemoteAddr(), "bytes", n, "err", err)
		}()
	}
}

func handle(ctx context.Context, c net.Conn, maxConn time.Duration) (int64, error) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(maxConn))
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return n, err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	_, err = c.Write(b[:])
	return n, err
}

// Result is what Push measured.
type Result struct {
	Bytes   int64
	Elapsed time.Duration
	Mbps    float64
}

// Push sends data on c for d, closes the write side and reads the sink's
// count. The rate is the sink's count over the time until the count
// arrived, which includes draining the socket buffers.
func Push(ctx context.Context, c net.Conn, d time.Duration) (Result, error) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return Result{}, errors.New("sink: connection cannot half-close")
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	end := start.Add(d)
	_ = c.SetWriteDeadline(end)
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				break
			}
			return Result{}, fmt.Errorf("sink: push: %w", err)
		}
	}
	_ = c.SetWriteDeadline(time.Time{})
	if err := cw.CloseWrite(); err != nil {
		return Result{}, fmt.Errorf("sink: close write: %w", err)
	}
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return Result{}, fmt.Errorf("sink: read count: %w", err)
	}
	r := Result{Bytes: int64(binary.BigEndian.Uint64(b[:])), Elapsed: time.Since(start)}
	r.Mbps = float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e6
	return r, nil
}
