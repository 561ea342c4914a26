// Package lte probes a cellular modem over its AT command port: it finds the port in sysfs
// (USB serial interfaces bound to option, qcserial or cdc_acm), runs an AT session that
// tolerates echo and unsolicited lines, and reads the model, IMEI, SIM state, ICCID,
// registration and signal quality (CSQ, converted to dBm).
//
// Modems are found per device (FindModems): USB modems by their drivers and the interface
// layout of known families (Quectel, Sierra Wireless, Fibocom), PCIe modems through the
// kernel's WWAN subsystem, whose AT ports (/dev/wwan0at0) are character devices rather than
// ttys. QMI and MBIM themselves are not spoken (there is no usable Go QMI/MBIM library here):
// a modem that exposes only those fails with a NoATPortError naming its control interface.
package lte

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SIM states.
const (
	SIMReady   = "ready"
	SIMAbsent  = "absent"
	SIMPIN     = "pin"   // PIN or PUK required
	SIMError   = "error" // SIM failure or an answer the probe does not know
	SIMUnknown = ""
)

// Registration states (the stat of +CREG/+CEREG).
const (
	RegNotSearching = 0
	RegHome         = 1
	RegSearching    = 2
	RegDenied       = 3
	RegUnknown      = 4
	RegRoaming      = 5
)

// CSQUnknown is the rssi value for "not known or not detectable".
const CSQUnknown = 99

// Info is what a modem reports.
type Info struct {
	Port string `json:"port,omitempty"`
	// Device describes the modem the port belongs to ("Quectel EC25 (2c7c:0125, 1-1)") and
	// Control its control interface (ControlAT ...), both empty when the port was named
	// or found without a known modem.
	Device       string `json:"device,omitempty"`
	Control      string `json:"control,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Revision     string `json:"revision,omitempty"`
	IMEI         string `json:"imei,omitempty"`
	SIM          string `json:"sim"`
	ICCID        string `json:"iccid,omitempty"`
	IMSI         string `json:"imsi,omitempty"`
	// Reg is the best registration stat from +CREG and +CEREG, -1 when neither answered.
	Reg int `json:"reg"`
	// CSQ is the rssi of +CSQ (0..31, 99 unknown); SignalDBm its value in dBm (0 unknown).
	CSQ       int `json:"csq"`
	SignalDBm int `json:"signal_dbm,omitempty"`
	// Unsolicited lines seen during the probe.
	Unsolicited []string `json:"unsolicited,omitempty"`
}

// Registered reports home or roaming registration.
func (i Info) Registered() bool { return i.Reg == RegHome || i.Reg == RegRoaming }

// RegText names the registration state.
func RegText(stat int) string {
	switch stat {
	case RegNotSearching:
		return "not registered"
	case RegHome:
		return "registered (home)"
	case RegSearching:
		return "searching"
	case RegDenied:
		return "registration denied"
	case RegRoaming:
		return "registered (roaming)"
	case -1:
		return "registration not reported"
	}
	return "registration unknown"
}

// CSQToDBm converts a +CSQ rssi to dBm (0 -> -113 or less, 31 -> -51 or more); ok is false
// for 99 and out-of-range values.
func CSQToDBm(rssi int) (dbm int, ok bool) {
	if rssi < 0 || rssi > 31 {
		return 0, false
	}
	return -113 + 2*rssi, true
}

// ValidIMEI reports whether s is 15 digits with a correct Luhn check digit.
func ValidIMEI(s string) bool {
	if len(s) != 15 {
		return false
	}
	sum := 0
	for i, c := range s {
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// cmdTimeout bounds one AT command; modems answer in well under a second, CPIN and CCID can
// take a few while the SIM initialises.
const cmdTimeout = 5 * time.Second

// Probe runs the AT session on rw and reads everything Info holds. It returns what it could
// read and an error only when the port does not speak AT at all.
func Probe(ctx context.Context, rw io.ReadWriter) (Info, error) {
	return probe(ctx, rw, 0)
}

// defaultSync is the first AT's answer timeout; the second and third tries wait two and
// three times as long, so a modem still booting (or a loaded machine) gets about 6 s.
const defaultSync = time.Second

func probe(ctx context.Context, rw io.ReadWriter, sync time.Duration) (Info, error) {
	if sync <= 0 {
		sync = defaultSync
	}
	s := NewSession(rw)
	info := Info{Reg: -1, CSQ: CSQUnknown}
	cmd := func(c string) ([]string, error) {
		cctx, cancel := context.WithTimeout(ctx, cmdTimeout)
		defer cancel()
		return s.Command(cctx, c)
	}
	// A modem that just booted may miss the first AT; try a few times.
	var err error
	for try := 1; try <= 3; try++ {
		quick, cancel := context.WithTimeout(ctx, time.Duration(try)*sync)
		_, err = s.Command(quick, "AT")
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return info, fmt.Errorf("no AT answer: %w", err)
	}
	_, _ = cmd("ATE0")      // echo off; the session copes with echo anyway
	_, _ = cmd("AT+CMEE=1") // numeric +CME ERROR codes

	if l, err := cmd("AT+CGMI"); err == nil {
		info.Manufacturer = firstPlain(l, "+CGMI:")
	}
	if l, err := cmd("AT+CGMM"); err == nil {
		info.Model = firstPlain(l, "+CGMM:")
	}
	if info.Model == "" {
		if l, err := cmd("ATI"); err == nil && len(l) > 0 {
			info.Model = strings.Join(l, " ")
		}
	}
	if l, err := cmd("AT+CGMR"); err == nil {
		info.Revision = firstPlain(l, "+CGMR:")
	}
	if l, err := cmd("AT+CGSN"); err == nil {
		info.IMEI = digits(firstPlain(l, "+CGSN:"))
	}

	info.SIM = readSIM(cmd)
	if info.SIM == SIMReady {
		for _, c := range []string{"AT+CCID", "AT+QCCID", "AT+ICCID"} {
			if l, err := cmd(c); err == nil {
				if id := iccid(firstPlain(l, "+CCID:", "+QCCID:", "+ICCID:")); id != "" {
					info.ICCID = id
					break
				}
			}
		}
		if l, err := cmd("AT+CIMI"); err == nil {
			info.IMSI = digits(firstPlain(l, "+CIMI:"))
		}
	}
	for _, c := range []string{"AT+CEREG?", "AT+CREG?"} {
		if l, err := cmd(c); err == nil {
			if stat, ok := parseReg(l); ok && betterReg(stat, info.Reg) {
				info.Reg = stat
			}
		}
	}
	if l, err := cmd("AT+CSQ"); err == nil {
		if rssi, ok := parseCSQ(l); ok {
			info.CSQ = rssi
			info.SignalDBm, _ = CSQToDBm(rssi)
		}
	}
	info.Unsolicited = s.Unsolicited()
	return info, ctx.Err()
}

func readSIM(cmd func(string) ([]string, error)) string {
	for attempt := 0; ; attempt++ {
		l, err := cmd("AT+CPIN?")
		var cme *CMEError
		switch {
		case err == nil:
			v := strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(firstPlain(l, "+CPIN:"), "+CPIN:")))
			switch {
			case v == "READY":
				return SIMReady
			case strings.Contains(v, "PIN") || strings.Contains(v, "PUK"):
				return SIMPIN
			case strings.Contains(v, "NOT INSERTED"):
				return SIMAbsent
			}
			return SIMError
		case errors.As(err, &cme) && cme.Code == CMESIMNotInserted:
			return SIMAbsent
		case errors.As(err, &cme) && cme.Code == CMESIMPINRequired:
			return SIMPIN
		case errors.As(err, &cme) && cme.Code == CMESIMBusy && attempt < 3:
			time.Sleep(500 * time.Millisecond)
			continue
		case errors.As(err, &cme):
			return SIMError
		}
		return SIMUnknown
	}
}

// firstPlain returns the first information line with its prefix (any of prefixes) removed.
func firstPlain(lines []string, prefixes ...string) string {
	for _, l := range lines {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				return strings.TrimSpace(strings.TrimPrefix(l, p))
			}
		}
	}
	for _, l := range lines {
		if !isURC(l) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func digits(s string) string {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	for _, c := range s {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return s
}

var iccidRE = regexp.MustCompile(`^[0-9]{18,20}[Ff]?$`)

func iccid(s string) string {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if !iccidRE.MatchString(s) {
		return ""
	}
	return strings.TrimRight(s, "Ff")
}

// parseReg reads the stat of "+CREG: n,stat[,...]" (answer to a read command) or of an
// unsolicited "+CREG: stat[,...]".
func parseReg(lines []string) (int, bool) {
	for _, l := range lines {
		i := strings.Index(l, ":")
		if i < 0 || !strings.Contains(l[:i], "REG") {
			continue
		}
		f := strings.Split(strings.TrimSpace(l[i+1:]), ",")
		idx := 1
		if len(f) == 1 {
			idx = 0
		}
		if stat, err := strconv.Atoi(strings.TrimSpace(f[idx])); err == nil && stat >= 0 && stat <= 10 {
			return stat, true
		}
	}
	return 0, false
}

// betterReg orders registration states: registered beats searching beats denied beats not.
func betterReg(a, b int) bool {
	rank := func(s int) int {
		switch s {
		case RegHome, RegRoaming:
			return 4
		case RegSearching:
			return 3
		case RegDenied:
			return 2
		case -1:
			return 0
		}
		return 1
	}
	return rank(a) > rank(b)
}

func parseCSQ(lines []string) (int, bool) {
	for _, l := range lines {
		if !strings.HasPrefix(l, "+CSQ:") {
			continue
		}
		f := strings.Split(strings.TrimSpace(strings.TrimPrefix(l, "+CSQ:")), ",")
		if rssi, err := strconv.Atoi(strings.TrimSpace(f[0])); err == nil && rssi >= 0 && (rssi <= 31 || rssi == CSQUnknown) {
			return rssi, true
		}
	}
	return 0, false
}
