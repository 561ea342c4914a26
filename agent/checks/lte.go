package checks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/flashline/flashline/agent/probe/lte"
	"github.com/flashline/flashline/protocol"
)

// ModemProber reads a modem's state; port "" means find the AT port.
type ModemProber interface {
	Probe(ctx context.Context, port string) (lte.Info, error)
}

// SystemModems probes modems on the live system through their AT port.
type SystemModems struct {
	Sys string
	Dev string
}

// Probe finds the AT port (when port is empty) and probes it.
func (s SystemModems) Probe(ctx context.Context, port string) (lte.Info, error) {
	return lte.Prober{Sys: s.Sys, Dev: s.Dev}.Probe(ctx, port)
}

// LTEModemParams configure lte.modem.
type LTEModemParams struct {
	Port         string `yaml:"port" json:"port,omitempty" jsonschema_description:"AT port device (/dev/ttyUSB2, /dev/wwan0at0); empty: found in sysfs (the modem's known interface layout, or the WWAN subsystem's AT ports)"`
	Model        string `yaml:"model" json:"model,omitempty" jsonschema_description:"Glob on the model (AT+CGMM), e.g. EC25*"`
	IMEI         bool   `yaml:"imei" json:"imei,omitempty" jsonschema:"default=true" jsonschema_description:"Require a valid 15-digit IMEI (Luhn checked)"`
	SIM          string `yaml:"sim" json:"sim,omitempty" jsonschema:"enum=ready,enum=absent,enum=any,default=ready" jsonschema_description:"Required SIM state"`
	ICCID        string `yaml:"iccid" json:"iccid,omitempty" jsonschema_description:"Glob the SIM's ICCID must match (89*); empty: any readable ICCID when sim is ready"`
	Registered   bool   `yaml:"registered" json:"registered,omitempty" jsonschema_description:"Require network registration (home or roaming)"`
	MinCSQ       int    `yaml:"min_csq" json:"min_csq,omitempty" jsonschema:"minimum=0,maximum=31" jsonschema_description:"Least signal quality (AT+CSQ rssi, 0..31; dBm = -113 + 2*csq)"`
	MinSignalDBm int    `yaml:"min_signal_dbm" json:"min_signal_dbm,omitempty" jsonschema:"minimum=-113,maximum=-51" jsonschema_description:"Least signal in dBm (-113..-51), from CSQ"`
}

// SIM requirements.
var simStates = []string{"ready", "absent", "any"}

// LTEModem is lte.modem: the modem answers AT, with SIM, registration and signal as asked.
func LTEModem(m ModemProber) Kind {
	return Define("lte.modem", "The LTE modem answers on its AT port; checks model, IMEI, SIM, ICCID, registration and signal (CSQ).",
		func() LTEModemParams { return LTEModemParams{IMEI: true, SIM: "ready"} },
		func(p LTEModemParams) []FieldError {
			var errs []FieldError
			if !slices.Contains(simStates, p.SIM) {
				errs = append(errs, FieldError{"sim", fmt.Sprintf("%q: want ready, absent or any", p.SIM)})
			}
			if p.MinCSQ < 0 || p.MinCSQ > 31 {
				errs = append(errs, FieldError{"min_csq", "must be in [0, 31]"})
			}
			if p.MinSignalDBm != 0 && (p.MinSignalDBm < -113 || p.MinSignalDBm > -51) {
				errs = append(errs, FieldError{"min_signal_dbm", "must be in [-113, -51] dBm (the range CSQ can report)"})
			}
			if p.SIM == "absent" && p.Registered {
				errs = append(errs, FieldError{"registered", "a modem without SIM cannot register"})
			}
			if p.SIM == "absent" && p.ICCID != "" {
				errs = append(errs, FieldError{"iccid", "a modem without SIM has no ICCID"})
			}
			if p.Port != "" && !strings.HasPrefix(p.Port, "/dev/") {
				errs = append(errs, FieldError{"port", "must be a device path under /dev/"})
			}
			return errs
		},
		func(p LTEModemParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				info, err := m.Probe(ctx, p.Port)
				var noAT *lte.NoATPortError
				if errors.As(err, &noAT) {
					// The modem is there; say what it offers instead of "no modem".
					return Failf([]protocol.Measurement{Text("control", noAT.Modem.Control), Text("modem", noAT.Modem.Describe())}, "%v", err), nil
				}
				if err != nil {
					if ctx.Err() != nil {
						return Failf(nil, "modem did not answer in time: %v", err), nil
					}
					return Failf(nil, "no modem: %v", err), nil
				}
				return judgeModem(p, info), nil
			})
		})
}

func judgeModem(p LTEModemParams, info lte.Info) Outcome {
	ms := []protocol.Measurement{Text("port", info.Port), Text("model", info.Model), Text("imei", info.IMEI), Text("sim", orDash(info.SIM))}
	if info.Control != "" {
		ms = append(ms, Text("control", info.Control))
	}
	if info.ICCID != "" {
		ms = append(ms, Text("iccid", info.ICCID))
	}
	ms = append(ms, Text("registration", lte.RegText(info.Reg)))
	if info.CSQ != lte.CSQUnknown {
		ms = append(ms, Num("csq", float64(info.CSQ), ""), Num("signal_dbm", float64(info.SignalDBm), "dBm"))
	}
	switch {
	case !MatchGlob(p.Model, info.Model):
		return Failf(ms, "modem model %q does not match %q", info.Model, p.Model)
	case p.IMEI && !lte.ValidIMEI(info.IMEI):
		return Failf(ms, "IMEI %q is not valid", info.IMEI)
	case p.SIM == "ready" && info.SIM != lte.SIMReady:
		what := map[string]string{lte.SIMAbsent: "no SIM (CME ERROR 10)", lte.SIMPIN: "SIM wants a PIN", lte.SIMError: "SIM failure"}[info.SIM]
		if what == "" {
			what = "SIM state unknown"
		}
		return Failf(ms, "%s, want SIM ready", what)
	case p.SIM == "absent" && info.SIM != lte.SIMAbsent:
		return Failf(ms, "SIM %s, want no SIM", orDash(info.SIM))
	case p.SIM == "ready" && info.ICCID == "":
		return Failf(ms, "SIM ready but its ICCID cannot be read")
	case p.ICCID != "" && !MatchGlob(p.ICCID, info.ICCID):
		return Failf(ms, "ICCID %s does not match %s", info.ICCID, p.ICCID)
	case p.Registered && !info.Registered():
		return Failf(ms, "%s, want registered", lte.RegText(info.Reg))
	case (p.MinCSQ > 0 || p.MinSignalDBm != 0) && info.CSQ == lte.CSQUnknown:
		return Failf(ms, "signal unknown (CSQ 99)")
	case p.MinCSQ > 0 && info.CSQ < p.MinCSQ:
		return Failf(ms, "CSQ %d (%d dBm) < %d", info.CSQ, info.SignalDBm, p.MinCSQ)
	case p.MinSignalDBm != 0 && info.SignalDBm < p.MinSignalDBm:
		return Failf(ms, "signal %d dBm < %d dBm (CSQ %d)", info.SignalDBm, p.MinSignalDBm, info.CSQ)
	}
	sig := "signal unknown"
	if info.CSQ != lte.CSQUnknown {
		sig = fmt.Sprintf("CSQ %d (%d dBm)", info.CSQ, info.SignalDBm)
	}
	return Passf(ms, "%s on %s, SIM %s, %s, %s", info.Model, info.Port, orDash(info.SIM), lte.RegText(info.Reg), sig)
}
