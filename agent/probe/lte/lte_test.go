package lte

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/flashline/flashline/testbed/atmodem"
	"golang.org/x/sys/unix"
)

// modemOnPty serves a fake modem on a pty's master and returns the slave's path.
func modemOnPty(t *testing.T, cfg atmodem.Config) string {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	path := slave.Name()
	// Raw mode before the modem's greeting: a fresh pty echoes and translates CR, and the
	// greeting would come back to the modem as commands.
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	// Keep the slave open for the test's life: a pty master reads EIO once every slave fd
	// is closed, which would end the fake modem between the probe's open and close.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = atmodem.New(cfg).Serve(ctx, master)
	}()
	t.Cleanup(func() {
		cancel()
		master.Close()
		slave.Close()
		<-done
	})
	return path
}

func TestProbeOverPty(t *testing.T) {
	noSIM := atmodem.EC25()
	noSIM.SIMPresent = false
	noSIM.CSQ = 99
	verbose := atmodem.EC25()
	verbose.SIMPresent = false
	verbose.CMEE = 2
	roaming := atmodem.EC25()
	roaming.Reg = 5
	roaming.CSQ = 7
	roaming.Echo = false
	roaming.URCEvery = 1
	pin := atmodem.EC25()
	pin.PINRequired = true
	tests := []struct {
		name string
		cfg  atmodem.Config
		want Info
	}{
		{"healthy EC25", atmodem.EC25(), Info{Manufacturer: "Quectel", Model: "EC25", IMEI: "867962041234561", SIM: SIMReady, ICCID: "89490200001234567890", IMSI: "262011234567890", Reg: RegHome, CSQ: 20, SignalDBm: -73}},
		{"no SIM (CME ERROR 10)", noSIM, Info{Model: "EC25", IMEI: "867962041234561", SIM: SIMAbsent, Reg: 0, CSQ: 99}},
		{"no SIM verbose errors", verbose, Info{Model: "EC25", SIM: SIMAbsent, Reg: 0, CSQ: 20, SignalDBm: -73}},
		{"roaming weak, URC before every answer, no echo", roaming, Info{Model: "EC25", SIM: SIMReady, ICCID: "89490200001234567890", Reg: RegRoaming, CSQ: 7, SignalDBm: -99}},
		{"PIN", pin, Info{Model: "EC25", SIM: SIMPIN, Reg: 0, CSQ: 20, SignalDBm: -73}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := modemOnPty(t, tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := Prober{Sys: "testdata/none"}.Probe(ctx, path)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			w := tt.want
			if got.Model != w.Model || got.SIM != w.SIM || got.ICCID != w.ICCID || got.Reg != w.Reg || got.CSQ != w.CSQ || got.SignalDBm != w.SignalDBm ||
				(w.IMEI != "" && got.IMEI != w.IMEI) || (w.Manufacturer != "" && got.Manufacturer != w.Manufacturer) || (w.IMSI != "" && got.IMSI != w.IMSI) {
				t.Errorf("Probe = %+v\nwant %+v", got, w)
			}
			if got.Port != path {
				t.Errorf("port %q, want %q", got.Port, path)
			}
			if tt.cfg.URCEvery > 0 && len(got.Unsolicited) == 0 {
				t.Errorf("no unsolicited lines recorded")
			}
		})
	}
}

func TestProbeMutePort(t *testing.T) {
	cfg := atmodem.EC25()
	cfg.Mute = true
	path := modemOnPty(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Prober{SyncTimeout: 100 * time.Millisecond}.Probe(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "no AT answer") {
		t.Fatalf("Probe of a mute port = %v, want no AT answer", err)
	}
}

func TestFindPorts(t *testing.T) {
	ports, err := FindPorts("testdata/sys", "/dev")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ports {
		got = append(got, p.Name+"/"+p.Driver+"/"+p.VID+":"+p.PID+"/"+string(rune('0'+p.Interface))+"/"+string(rune('0'+p.Rank)))
	}
	want := []string{
		"ttyUSB2/option/2c7c:0125/2/3",
		"ttyACM0/cdc_acm/1546:1141/0/2",
		"ttyUSB0/option/2c7c:0125/0/2", "ttyUSB1/option/2c7c:0125/1/2", "ttyUSB3/option/2c7c:0125/3/2",
		"ttyUSB4/ftdi_sio/0403:6001/0/1",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("FindPorts =\n%v\nwant\n%v", got, want)
	}
	if ports[0].Path != "/dev/ttyUSB2" {
		t.Errorf("path %q", ports[0].Path)
	}
}

// TestProbeFindsATPort probes the fake tree's ports in rank order: the first two do not
// answer, the third is the modem.
func TestProbeFindsATPort(t *testing.T) {
	modem := modemOnPty(t, atmodem.EC25())
	mute := atmodem.EC25()
	mute.Mute = true
	dead := modemOnPty(t, mute)
	var tried []string
	p := Prober{Sys: "testdata/sys", Dev: "/dev", SyncTimeout: 500 * time.Millisecond, Open: func(path string) (io.ReadWriteCloser, error) {
		tried = append(tried, path)
		switch path {
		case "/dev/ttyUSB2":
			return OpenSerial(dead)
		case "/dev/ttyACM0":
			return nil, os.ErrPermission
		}
		return OpenSerial(modem)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := p.Probe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Port != "/dev/ttyUSB0" || info.Model != "EC25" || strings.Join(tried, ",") != "/dev/ttyUSB2,/dev/ttyACM0,/dev/ttyUSB0" {
		t.Errorf("port %s model %s tried %v", info.Port, info.Model, tried)
	}
}

func TestSessionParsing(t *testing.T) {
	tests := []struct {
		name    string
		cmd     string
		reply   string
		want    []string
		wantErr error
		wantCME int
	}{
		{"echo and urc", "AT+CSQ", "AT+CSQ\r\r\n+QIND: SMS DONE\r\n+CSQ: 21,99\r\n\r\nOK\r\n", []string{"+CSQ: 21,99"}, nil, 0},
		{"bare answer with urc", "AT+CGSN", "\r\nRDY\r\n867962041234561\r\n+CREG: 1\r\nOK\r\n", []string{"867962041234561"}, nil, 0},
		{"cme numeric", "AT+CPIN?", "\r\n+CME ERROR: 10\r\n", nil, nil, 10},
		{"cme text", "AT+CPIN?", "\r\n+CME ERROR: SIM not inserted\r\n", nil, nil, 10},
		{"error", "AT+FOO", "\r\nERROR\r\n", nil, ErrError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w := io.Pipe()
			s := NewSession(struct {
				io.Reader
				io.Writer
			}{r, io.Discard})
			go func() { io.WriteString(w, tt.reply) }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := s.Command(ctx, tt.cmd)
			w.Close()
			var cme *CMEError
			switch {
			case tt.wantCME != 0:
				if !errors.As(err, &cme) || cme.Code != tt.wantCME {
					t.Fatalf("err = %v, want CME %d", err, tt.wantCME)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	for rssi, want := range map[int]int{0: -113, 10: -93, 31: -51} {
		if got, ok := CSQToDBm(rssi); !ok || got != want {
			t.Errorf("CSQToDBm(%d) = %d, %v", rssi, got, ok)
		}
	}
	if _, ok := CSQToDBm(99); ok {
		t.Error("CSQ 99 converted")
	}
	if !ValidIMEI("867962041234561") || ValidIMEI("867962041234563") || ValidIMEI("12345") {
		t.Error("ValidIMEI")
	}
	if s, ok := parseReg([]string{"+CEREG: 2,5,\"1A2B\",\"01A2B3C4\",7"}); !ok || s != 5 {
		t.Errorf("parseReg = %d %v", s, ok)
	}
	if s, ok := parseReg([]string{"+CREG: 3"}); !ok || s != 3 {
		t.Errorf("parseReg urc = %d %v", s, ok)
	}
	if iccid("\"8949020000123456789F\"") != "8949020000123456789" {
		t.Error("iccid with F")
	}
}

func FuzzSession(f *testing.F) {
	f.Add("AT+CSQ\r\r\n+CSQ: 21,99\r\nOK\r\n")
	f.Add("\r\n+CME ERROR: 10\r\n")
	f.Add("+CREG: 0,1\r\n+CEREG: 1,5\r\nOK\r\n")
	f.Fuzz(func(t *testing.T, reply string) {
		r, w := io.Pipe()
		s := NewSession(struct {
			io.Reader
			io.Writer
		}{r, io.Discard})
		go func() { io.WriteString(w, reply); w.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		lines, _ := s.Command(ctx, "AT+CSQ")
		parseCSQ(lines)
		parseReg(lines)
		firstPlain(lines, "+CSQ:")
	})
}
