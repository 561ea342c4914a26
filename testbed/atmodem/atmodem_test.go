package atmodem

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// transcript sends each command and returns everything the modem wrote, with CR LF shown
// as "|" between lines.
func transcript(t *testing.T, cfg Config, cmds ...string) string {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cfg).Serve(ctx, a) }()
	var out strings.Builder
	got := make(chan struct{})
	go func() {
		defer close(got)
		br := bufio.NewReader(b)
		for {
			c, err := br.ReadByte()
			if err != nil {
				return
			}
			out.WriteByte(c)
		}
	}()
	for _, c := range cmds {
		b.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := b.Write([]byte(c + "\r")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	a.Close()
	b.Close()
	<-got
	<-done
	s := strings.ReplaceAll(out.String(), "\r\n", "|")
	return strings.ReplaceAll(s, "\r", "<")
}

func TestAnswers(t *testing.T) {
	noSIM := EC25()
	noSIM.SIMPresent = false
	noSIM.URCEvery = 0
	quiet := EC25()
	quiet.Greeting, quiet.URCEvery, quiet.Echo = nil, 0, false
	tests := []struct {
		name string
		cfg  Config
		cmds []string
		want string
	}{
		{"greeting, echo, urc every 3rd", EC25(), []string{"AT", "AT+CGMM", "AT+CSQ"}, "|RDY|AT<|OK|AT+CGMM<|EC25||OK|AT+CSQ<|+QIND: SMS DONE||+CSQ: 20,99||OK|"},
		{"echo off", quiet, []string{"ATE1", "ATE0", "AT+CGSN"}, "|OK|ATE0<|OK||867962041234561||OK|"},
		{"no SIM: plain then numeric then verbose errors", noSIM, []string{"AT+CPIN?", "AT+CMEE=1", "AT+CPIN?", "AT+CMEE=2", "AT+CCID"},
			"|RDY|AT+CPIN?<|ERROR|AT+CMEE=1<|OK|AT+CPIN?<|+CME ERROR: 10|AT+CMEE=2<|OK|AT+CCID<|+CME ERROR: SIM not inserted|"},
		{"unknown command", quiet, []string{"AT+FOO"}, "|ERROR|"},
		{"registration", quiet, []string{"AT+CEREG?"}, "|+CEREG: 0,1||OK|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transcript(t, tt.cfg, tt.cmds...); got != tt.want {
				t.Errorf("transcript\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
