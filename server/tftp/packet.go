package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Opcodes from RFC 1350 and RFC 2347.
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// Error codes from RFC 1350 and RFC 2347.
const (
	errNotDefined       uint16 = 0
	errFileNotFound     uint16 = 1
	errAccessViolation  uint16 = 2
	errIllegalOperation uint16 = 4
	errUnknownTID       uint16 = 5
	errOptionRefused    uint16 = 8
)

// Limits on what a request may carry. Names longer than this are refused
// rather than looked up: no PXE client needs them and they only cost work.
const (
	maxFilenameLen = 255
	maxOptions     = 16
	minBlockSize   = 8
	maxBlockSize   = 65464 // RFC 2348: largest block fitting a UDP datagram over IPv4
	defaultBlock   = 512
)

var errMalformed = errors.New("malformed packet")

// request is a decoded RRQ or WRQ.
type request struct {
	op       uint16
	filename string
	mode     string // lower case: "octet" or "netascii"
	// options in the order received, names lower-cased. RFC 2347 makes
	// option names case-insensitive; values are kept verbatim.
	options []option
}

type option struct {
	name, value string
}

// parseRequest decodes an RRQ or WRQ packet. It never panics on any input;
// everything it cannot make sense of is errMalformed.
func parseRequest(b []byte) (request, error) {
	if len(b) < 4 {
		return request{}, fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		return request{}, fmt.Errorf("%w: opcode %d is not a request", errMalformed, op)
	}
	fields, err := splitNUL(b[2:])
	if err != nil {
		return request{}, err
	}
	if len(fields) < 2 {
		return request{}, fmt.Errorf("%w: request needs a filename and a mode", errMalformed)
	}
	r := request{op: op, filename: fields[0], mode: strings.ToLower(fields[1])}
	if r.filename == "" {
		return request{}, fmt.Errorf("%w: empty filename", errMalformed)
	}
	if len(r.filename) > maxFilenameLen {
		return request{}, fmt.Errorf("%w: filename longer than %d bytes", errMalformed, maxFilenameLen)
	}
	if r.mode != "octet" && r.mode != "netascii" && r.mode != "mail" {
		return request{}, fmt.Errorf("%w: unknown mode %q", errMalformed, fields[1])
	}
	rest := fields[2:]
	if len(rest)%2 != 0 {
		// Some old clients pad the request with a stray NUL; a lone
		// trailing empty field is tolerated, anything else is not.
		if rest[len(rest)-1] != "" {
			return request{}, fmt.Errorf("%w: option %q has no value", errMalformed, rest[len(rest)-1])
		}
		rest = rest[:len(rest)-1]
	}
	if len(rest)/2 > maxOptions {
		return request{}, fmt.Errorf("%w: more than %d options", errMalformed, maxOptions)
	}
	for i := 0; i < len(rest); i += 2 {
		r.options = append(r.options, option{name: strings.ToLower(rest[i]), value: rest[i+1]})
	}
	return r, nil
}

// splitNUL splits NUL-terminated strings. The packet must end with a NUL.
func splitNUL(b []byte) ([]string, error) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, fmt.Errorf("%w: last field is not NUL-terminated", errMalformed)
	}
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out, nil
}

// ackOrError is a decoded packet received from a client during a transfer.
type ackOrError struct {
	op    uint16
	block uint16 // for ACK
	code  uint16 // for ERROR
	msg   string // for ERROR
}

// parseReply decodes an ACK or ERROR packet sent by a client during a
// transfer. Other opcodes are errMalformed for a read transfer.
func parseReply(b []byte) (ackOrError, error) {
	if len(b) < 4 {
		return ackOrError{}, fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	op := binary.BigEndian.Uint16(b)
	switch op {
	case opACK:
		return ackOrError{op: op, block: binary.BigEndian.Uint16(b[2:])}, nil
	case opERROR:
		msg := b[4:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		return ackOrError{op: op, code: binary.BigEndian.Uint16(b[2:]), msg: sanitize(string(msg))}, nil
	default:
		return ackOrError{}, fmt.Errorf("%w: unexpected opcode %d during a read transfer", errMalformed, op)
	}
}

// sanitize keeps client-supplied text printable and short before it goes into
// a log line.
func sanitize(s string) string {
	const max = 128
	if len(s) > max {
		s = s[:max]
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

func appendError(b []byte, code uint16, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg...)
	return append(b, 0)
}

func appendOACK(b []byte, opts []option) []byte {
	b = binary.BigEndian.AppendUint16(b, opOACK)
	for _, o := range opts {
		b = append(b, o.name...)
		b = append(b, 0)
		b = append(b, o.value...)
		b = append(b, 0)
	}
	return b
}

// putDataHeader writes the DATA header into the first 4 bytes of b.
func putDataHeader(b []byte, block uint16) {
	binary.BigEndian.PutUint16(b, opDATA)
	binary.BigEndian.PutUint16(b[2:], block)
}
