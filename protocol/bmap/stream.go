package bmap

import (
	"crypto/sha256"
	"fmt"
	"hash"
)

// Checker verifies an image streamed in order against the map's range checksums. The
// checksum of a range is checked as soon as its last byte has passed, so that a wrong
// range stops the flash there rather than at the end.
type Checker struct {
	m    *Map
	next int       // index of the range being hashed
	h    hash.Hash // of Ranges[next], over the bytes seen so far
	off  int64     // image bytes seen
}

// NewChecker returns a Checker for an image of m.
func NewChecker(m *Map) *Checker { return &Checker{m: m, h: sha256.New()} }

// Write takes the next len(b) bytes of the image.
func (c *Checker) Write(b []byte) error {
	start := c.off
	end := start + int64(len(b))
	if end > c.m.ImageSize {
		return fmt.Errorf("the image is longer than the %d bytes its bmap says", c.m.ImageSize)
	}
	for c.next < len(c.m.Ranges) {
		r := c.m.Ranges[c.next]
		ro, re := c.m.Bytes(r)
		if ro >= end {
			break
		}
		lo, hi := max(ro, start), min(re, end)
		if lo < hi {
			c.h.Write(b[lo-start : hi-start])
		}
		if re > end {
			break
		}
		if got := c.h.Sum(nil); [sha256.Size]byte(got) != r.SHA256 {
			return fmt.Errorf("bmap range %d (blocks %d-%d, bytes %d-%d): sha256 %x, the bmap says %x", c.next+1, r.First, r.Last, ro, re-1, got, r.SHA256)
		}
		c.h.Reset()
		c.next++
	}
	c.off = end
	return nil
}

// Close reports an image that ended before its bmap's size.
func (c *Checker) Close() error {
	if c.off != c.m.ImageSize {
		return fmt.Errorf("the image ended after %d bytes, its bmap says %d", c.off, c.m.ImageSize)
	}
	return nil
}

// Spans calls fn for each part of [off, off+n) that lies in a mapped range, in order.
func (m *Map) Spans(off, n int64, fn func(off, n int64) error) error {
	end := off + n
	// Binary search for the first range ending after off.
	lo, hi := 0, len(m.Ranges)
	for lo < hi {
		mid := (lo + hi) / 2
		if _, re := m.Bytes(m.Ranges[mid]); re <= off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for i := lo; i < len(m.Ranges); i++ {
		ro, re := m.Bytes(m.Ranges[i])
		if ro >= end {
			break
		}
		a, b := max(ro, off), min(re, end)
		if a < b {
			if err := fn(a, b-a); err != nil {
				return err
			}
		}
	}
	return nil
}
