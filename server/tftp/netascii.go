package tftp

import "io"

// netasciiReader converts a local text stream to netascii on the fly
// (RFC 764 via RFC 1350): LF becomes CR LF and a bare CR becomes CR NUL.
// Because the converted size is not known in advance, tsize is not offered
// for netascii transfers.
type netasciiReader struct {
	r       io.Reader
	pending byte // second byte of an expansion still to emit when has is set
	has     bool
	buf     [4096]byte
	bufN    int
	bufOff  int
	err     error
}

func newNetasciiReader(r io.Reader) *netasciiReader { return &netasciiReader{r: r} }

func (n *netasciiReader) Read(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		if n.has {
			p[i] = n.pending
			i++
			n.has = false
			continue
		}
		if n.bufOff == n.bufN {
			if n.err != nil {
				break
			}
			if i > 0 {
				// Return what we have rather than block for more input.
				return i, nil
			}
			n.bufN, n.err = n.r.Read(n.buf[:])
			n.bufOff = 0
			continue
		}
		c := n.buf[n.bufOff]
		n.bufOff++
		switch c {
		case '\n':
			p[i] = '\r'
			n.pending, n.has = '\n', true
		case '\r':
			p[i] = '\r'
			n.pending, n.has = 0, true
		default:
			p[i] = c
		}
		i++
	}
	if i == 0 && n.err != nil {
		return 0, n.err
	}
	return i, nil
}
