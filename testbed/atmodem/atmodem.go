// Package atmodem is a fake cellular modem that answers AT commands like a Quectel EC25: it
// serves the agent's LTE probe in unit tests (over a pty) and in QEMU tests, where it runs on
// the host behind `-chardev socket,...` + `-device usb-serial,chardev=...` and the guest
// sees it as /dev/ttyUSB0. Model, IMEI, ICCID, SIM presence, registration and CSQ are
// configurable, and it sends unsolicited lines the way real modems do.
package atmodem

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Config is what the fake modem reports.
type Config struct {
	Manufacturer string
	Model        string
	Revision     string
	IMEI         string
	ICCID        string
	IMSI         string
	SIMPresent   bool
	PINRequired  bool
	// Reg is the registration stat (+CREG/+CEREG): 1 home, 5 roaming, 2 searching, 3 denied.
	Reg int
	// CSQ is the rssi of +CSQ (0..31, 99 unknown).
	CSQ int
	// Greeting lines are sent when a session starts (a modem's boot: RDY, +CFUN: 1 ...).
	Greeting []string
	// URCs are sent one before every Nth answer (N = URCEvery, 0: never), to check that
	// the probe tolerates unsolicited lines in the middle of a session.
	URCs     []string
	URCEvery int
	// Echo is the initial echo setting (real modems start with echo on; ATE0 turns it off).
	Echo bool
	// Mute makes the modem read commands and answer nothing (a dead or wrong port).
	Mute bool
	// CMEE is the initial +CMEE mode (0: plain ERROR, 1: numeric, 2: verbose).
	CMEE int
}

// EC25 returns the configuration of a healthy Quectel EC25 with a SIM, registered at home
// with CSQ 20 (-73 dBm).
func EC25() Config {
	return Config{
		Manufacturer: "Quectel", Model: "EC25", Revision: "EC25EFAR06A06M4G",
		IMEI: "867962041234561", ICCID: "89490200001234567890", IMSI: "262011234567890",
		SIMPresent: true, Reg: 1, CSQ: 20,
		Greeting: []string{"RDY"},
		URCs:     []string{"+QIND: SMS DONE", "+QIND: PB DONE", "+CREG: 1"},
		URCEvery: 3,
		Echo:     true,
	}
}

// Modem serves one configuration; each Serve call is a fresh session with its own state.
type Modem struct {
	cfg Config
}

// New returns a modem with cfg.
func New(cfg Config) *Modem { return &Modem{cfg: cfg} }

// session is the state of one Serve call.
type session struct {
	cfg     Config
	w       io.Writer
	mu      sync.Mutex
	echo    bool
	cmee    int
	answers int
	urcNext int
}

// Serve answers commands read from rw until ctx is done or rw fails. Commands end with CR
// (LF is ignored), as a terminal sends them.
func (m *Modem) Serve(ctx context.Context, rw io.ReadWriter) error {
	s := &session{cfg: m.cfg, w: rw, echo: m.cfg.Echo, cmee: m.cfg.CMEE}
	for _, g := range m.cfg.Greeting {
		if err := s.line(g); err != nil {
			return err
		}
	}
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		br := bufio.NewReader(rw)
		var cur []byte
		for {
			b, err := br.ReadByte()
			if err != nil {
				errc <- err
				return
			}
			switch b {
			case '\r':
				select {
				case lines <- string(cur):
				case <-ctx.Done():
					return
				}
				cur = cur[:0]
			case '\n':
			default:
				if len(cur) < 1024 {
					cur = append(cur, b)
				}
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("fake modem read: %w", err)
		case cmd := <-lines:
			if err := s.handle(cmd); err != nil {
				return err
			}
		}
	}
}

func (s *session) line(l string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := io.WriteString(s.w, "\r\n"+l+"\r\n")
	return err
}

func (s *session) handle(cmd string) error {
	if s.cfg.Mute {
		return nil
	}
	if s.echo {
		if _, err := io.WriteString(s.w, cmd+"\r"); err != nil {
			return err
		}
	}
	cmd = strings.TrimSpace(cmd)
	if cmd == "" {
		return nil
	}
	s.answers++
	if s.cfg.URCEvery > 0 && len(s.cfg.URCs) > 0 && s.answers%s.cfg.URCEvery == 0 {
		if err := s.line(s.cfg.URCs[s.urcNext%len(s.cfg.URCs)]); err != nil {
			return err
		}
		s.urcNext++
	}
	info, final := s.answer(strings.ToUpper(cmd))
	for _, l := range info {
		if err := s.line(l); err != nil {
			return err
		}
	}
	return s.line(final)
}

func (s *session) cmeErr(code int, text string) string {
	switch s.cmee {
	case 1:
		return fmt.Sprintf("+CME ERROR: %d", code)
	case 2:
		return "+CME ERROR: " + text
	}
	return "ERROR"
}

// simErr is the error for commands that need a SIM, or "" when the SIM is usable.
func (s *session) simErr() string {
	switch {
	case !s.cfg.SIMPresent:
		return s.cmeErr(10, "SIM not inserted")
	case s.cfg.PINRequired:
		return s.cmeErr(11, "SIM PIN required")
	}
	return ""
}

// answer returns the information lines and the final result for one command.
func (s *session) answer(cmd string) ([]string, string) {
	c := s.cfg
	switch {
	case cmd == "AT":
		return nil, "OK"
	case cmd == "ATE0":
		s.echo = false
		return nil, "OK"
	case cmd == "ATE1":
		s.echo = true
		return nil, "OK"
	case strings.HasPrefix(cmd, "AT+CMEE="):
		switch cmd[len("AT+CMEE="):] {
		case "0":
			s.cmee = 0
		case "1":
			s.cmee = 1
		case "2":
			s.cmee = 2
		default:
			return nil, "ERROR"
		}
		return nil, "OK"
	case cmd == "ATI":
		return []string{c.Manufacturer, c.Model, "Revision: " + c.Revision}, "OK"
	case cmd == "AT+CGMI" || cmd == "AT+GMI":
		return []string{c.Manufacturer}, "OK"
	case cmd == "AT+CGMM" || cmd == "AT+GMM":
		return []string{c.Model}, "OK"
	case cmd == "AT+CGMR" || cmd == "AT+GMR":
		return []string{c.Revision}, "OK"
	case cmd == "AT+CGSN" || cmd == "AT+GSN":
		return []string{c.IMEI}, "OK"
	case cmd == "AT+CPIN?":
		if !c.SIMPresent {
			return nil, s.cmeErr(10, "SIM not inserted")
		}
		if c.PINRequired {
			return []string{"+CPIN: SIM PIN"}, "OK"
		}
		return []string{"+CPIN: READY"}, "OK"
	case cmd == "AT+QCCID" || cmd == "AT+CCID":
		if e := s.simErr(); e != "" {
			return nil, e
		}
		prefix := "+CCID: "
		if cmd == "AT+QCCID" {
			prefix = "+QCCID: "
		}
		return []string{prefix + c.ICCID}, "OK"
	case cmd == "AT+CIMI":
		if e := s.simErr(); e != "" {
			return nil, e
		}
		return []string{c.IMSI}, "OK"
	case cmd == "AT+CREG?" || cmd == "AT+CEREG?" || cmd == "AT+CGREG?":
		name := strings.TrimSuffix(strings.TrimPrefix(cmd, "AT"), "?")
		reg := c.Reg
		if !c.SIMPresent || c.PINRequired {
			reg = 0
		}
		return []string{fmt.Sprintf("%s: 0,%d", name, reg)}, "OK"
	case cmd == "AT+CSQ":
		return []string{fmt.Sprintf("+CSQ: %d,99", c.CSQ)}, "OK"
	case cmd == "AT+CFUN?":
		return []string{"+CFUN: 1"}, "OK"
	}
	return nil, "ERROR"
}
