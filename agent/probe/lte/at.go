package lte

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// CMEError is a "+CME ERROR: n" final result (mobile equipment error). With AT+CMEE=2 the
// modem gives text instead of a number; Code is then -1 unless the text is a known one.
type CMEError struct {
	Code int
	Text string
}

func (e *CMEError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("+CME ERROR: %s", e.Text)
	}
	return fmt.Sprintf("+CME ERROR: %d", e.Code)
}

// CME error codes the probe acts on (3GPP TS 27.007, 9.2.1).
const (
	CMESIMNotInserted = 10
	CMESIMPINRequired = 11
	CMESIMFailure     = 13
	CMESIMBusy        = 14
)

// ErrError is a plain "ERROR" final result.
var ErrError = errors.New("modem answered ERROR")

// Session is an AT command session over a serial line. One goroutine reads lines for the
// session's life; Command is not safe for concurrent use (AT is one command at a time).
type Session struct {
	w     io.Writer
	lines chan string
	done  chan struct{}
	err   error // read error, set before done is closed

	mu  sync.Mutex
	urc []string
}

// NewSession starts reading lines from rw. Close rw to end the session's reader.
func NewSession(rw io.ReadWriter) *Session {
	s := &Session{w: rw, lines: make(chan string, 256), done: make(chan struct{})}
	go s.read(rw)
	return s
}

func (s *Session) read(r io.Reader) {
	defer close(s.done)
	br := bufio.NewReaderSize(r, 4096)
	var cur []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			s.err = err
			return
		}
		if b == '\r' || b == '\n' {
			if line := strings.TrimSpace(string(cur)); line != "" {
				// Never block: once the session's user is gone nobody reads, and the
				// reader must still notice the port closing. 256 lines of backlog is far
				// more than any answer.
				select {
				case s.lines <- line:
				default:
				}
			}
			cur = cur[:0]
			continue
		}
		// A prompt ("> " for SMS) never ends with a newline; nothing here sends one.
		if len(cur) < 4096 {
			cur = append(cur, b)
		}
	}
}

// Unsolicited returns the unsolicited lines seen so far (RDY, +QIND: ..., +CREG: 1 ...).
func (s *Session) Unsolicited() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.urc...)
}

func (s *Session) noteURC(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.urc) < 100 {
		s.urc = append(s.urc, line)
	}
}

// Command sends cmd (without the trailing CR) and returns the information lines of its
// answer: the echo of the command is dropped, and lines that look unsolicited (see isURC)
// are kept only when they carry the prefix the command's answer has (+CSQ for AT+CSQ).
// The error is ErrError, a *CMEError, or ctx's error when no final result arrived in time.
func (s *Session) Command(ctx context.Context, cmd string) ([]string, error) {
	// Drop what a previous, timed-out command left behind.
	for drained := false; !drained; {
		select {
		case l := <-s.lines:
			s.noteURC(l)
		default:
			drained = true
		}
	}
	if _, err := io.WriteString(s.w, cmd+"\r"); err != nil {
		return nil, fmt.Errorf("write %s: %w", cmd, err)
	}
	prefix := answerPrefix(cmd)
	var info []string
	for {
		var line string
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("%s: no answer: %w", cmd, ctx.Err())
		case line = <-s.lines:
		case <-s.done:
			// Lines already read are still in the channel.
			select {
			case line = <-s.lines:
			default:
				return info, fmt.Errorf("%s: serial line closed: %w", cmd, s.err)
			}
		}
		switch {
		case strings.EqualFold(line, cmd):
			continue // echo
		case line == "OK":
			return info, nil
		case line == "ERROR" || line == "NO CARRIER" || line == "COMMAND NOT SUPPORT":
			return info, fmt.Errorf("%s: %w", cmd, ErrError)
		case strings.HasPrefix(line, "+CME ERROR:"):
			return info, fmt.Errorf("%s: %w", cmd, parseCME(strings.TrimSpace(strings.TrimPrefix(line, "+CME ERROR:"))))
		case strings.HasPrefix(line, "+CMS ERROR:"):
			return info, fmt.Errorf("%s: %s: %w", cmd, line, ErrError)
		case prefix != "" && strings.HasPrefix(line, prefix):
			info = append(info, line)
		case isURC(line):
			s.noteURC(line)
		default:
			info = append(info, line)
		}
	}
}

// answerPrefix is the prefix of cmd's information lines: AT+CSQ -> +CSQ:, AT+CPIN? -> +CPIN:.
func answerPrefix(cmd string) string {
	c := strings.ToUpper(strings.TrimSpace(cmd))
	if !strings.HasPrefix(c, "AT+") && !strings.HasPrefix(c, "AT^") {
		return ""
	}
	name := c[2:]
	if i := strings.IndexAny(name, "?=;"); i >= 0 {
		name = name[:i]
	}
	return name + ":"
}

// isURC reports whether a line looks unsolicited: the result codes modems send on their own
// (RDY, RING, +QIND: ..., ^SYSSTART). Information lines of commands without a prefix (IMEI,
// model) never start with + or ^.
func isURC(line string) bool {
	if strings.HasPrefix(line, "+") || strings.HasPrefix(line, "^") {
		return true
	}
	switch strings.ToUpper(line) {
	case "RDY", "RING", "SMS DONE", "PB DONE", "APP RDY", "POWERED DOWN":
		return true
	}
	return false
}

var cmeTexts = map[string]int{
	"sim not inserted":  CMESIMNotInserted,
	"sim pin required":  CMESIMPINRequired,
	"sim failure":       CMESIMFailure,
	"sim busy":          CMESIMBusy,
	"no sim":            CMESIMNotInserted,
	"sim not installed": CMESIMNotInserted,
}

func parseCME(s string) *CMEError {
	if n, err := strconv.Atoi(s); err == nil {
		return &CMEError{Code: n}
	}
	if c, ok := cmeTexts[strings.ToLower(s)]; ok {
		return &CMEError{Code: c, Text: s}
	}
	return &CMEError{Code: -1, Text: s}
}
