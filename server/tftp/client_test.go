package tftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// testClient is a deliberately simple TFTP client for exercising the server,
// with hooks to lose packets.
type testClient struct {
	mode    string
	options []option
	// dropAck, when it returns true, makes the client "lose" the ACK it
	// was about to send for block (the wire number).
	dropAck func(block uint16) bool
	// sizeOnly makes the client end the transfer with error 8 after the
	// OACK, as UEFI firmware does to learn a file's size.
	sizeOnly bool
	// timeout is how long the client waits for any packet. Default 5s.
	timeout time.Duration
	// local is the client's address (default 127.0.0.1): tests of per-client limits use
	// other loopback addresses as other hosts.
	local net.IP
	// ackDelay is slept before every ACK: a slow client.
	ackDelay time.Duration
}

type result struct {
	data     []byte
	oack     map[string]string
	oacks    int            // OACK packets received
	dataPkts map[uint16]int // how many times each wire block number arrived
	tid      *net.UDPAddr
}

type tftpError struct {
	code uint16
	msg  string
}

func (e *tftpError) Error() string { return fmt.Sprintf("tftp error %d: %s", e.code, e.msg) }

func (c testClient) get(t testing.TB, server netip.AddrPort, name string) (result, error) {
	t.Helper()
	local := c.local
	if local == nil {
		local = net.IPv4(127, 0, 0, 1)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mode := c.mode
	if mode == "" {
		mode = "octet"
	}
	timeout := c.timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	rrq := binary.BigEndian.AppendUint16(nil, opRRQ)
	rrq = append(append(rrq, name...), 0)
	rrq = append(append(rrq, mode...), 0)
	for _, o := range c.options {
		rrq = append(append(rrq, o.name...), 0)
		rrq = append(append(rrq, o.value...), 0)
	}
	if _, err := conn.WriteToUDPAddrPort(rrq, server); err != nil {
		t.Fatal(err)
	}
	res := result{dataPkts: map[uint16]int{}}
	blksize, window := 512, 1
	var expected uint64 = 1 // next block wanted
	buf := make([]byte, 70000)
	ack := func(block uint16) {
		if c.dropAck != nil && c.dropAck(block) {
			return
		}
		time.Sleep(c.ackDelay)
		p := binary.BigEndian.AppendUint16(nil, opACK)
		p = binary.BigEndian.AppendUint16(p, block)
		conn.WriteToUDP(p, res.tid)
	}
	for {
		conn.SetReadDeadline(time.Now().Add(timeout))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return res, err
		}
		if res.tid == nil {
			res.tid = from
		} else if from.Port != res.tid.Port {
			continue
		}
		p := buf[:n]
		switch binary.BigEndian.Uint16(p) {
		case opERROR:
			msg := string(p[4 : n-1])
			return res, &tftpError{binary.BigEndian.Uint16(p[2:]), msg}
		case opOACK:
			res.oacks++
			fields, err := splitNUL(p[2:])
			if err != nil {
				return res, err
			}
			res.oack = map[string]string{}
			for i := 0; i+1 < len(fields); i += 2 {
				res.oack[fields[i]] = fields[i+1]
			}
			if v, ok := res.oack["blksize"]; ok {
				blksize, _ = strconv.Atoi(v)
			}
			if v, ok := res.oack["windowsize"]; ok {
				window, _ = strconv.Atoi(v)
			}
			if c.sizeOnly {
				conn.WriteToUDP(appendError(nil, errOptionRefused, "User aborted the transfer"), res.tid)
				return res, nil
			}
			ack(0)
		case opDATA:
			block := binary.BigEndian.Uint16(p[2:])
			res.dataPkts[block]++
			payload := p[4:]
			if block != uint16(expected) {
				// Out of order or a duplicate: acknowledge what we
				// have so the server resends from there.
				if block == uint16(expected-1) {
					ack(uint16(expected - 1))
				}
				continue
			}
			res.data = append(res.data, payload...)
			last := len(payload) < blksize
			if last || expected%uint64(window) == 0 {
				ack(block)
			}
			expected++
			if last {
				return res, nil
			}
		default:
			return res, errors.New("unexpected packet")
		}
	}
}
