package inventory

import (
	"path/filepath"

	"github.com/flashline/flashline/agent/probe/lte"
	"github.com/flashline/flashline/protocol"
)

// modemRadio is the first modem lte.FindModems finds, named by its AT port when it has one
// (so that a rule on ttyUSB2 keeps matching), else by its control node; nil when none.
func (r Reader) modemRadio() *protocol.Radio {
	ms, err := lte.FindModems(r.path("sys"), "/dev")
	if err != nil {
		r.log().Warn("inventory: modems", "err", err)
		return nil
	}
	if len(ms) == 0 {
		return nil
	}
	m := ms[0]
	radio := protocol.Radio{Kind: ModuleLTE, Name: m.Name, Control: m.Control}
	switch {
	case len(m.ATPorts) > 0:
		radio.Name, radio.Driver = m.ATPorts[0].Name, m.ATPorts[0].Driver
	case len(m.Nodes) > 0:
		radio.Name = filepath.Base(m.Nodes[0])
	}
	if radio.Driver == "" {
		radio.Driver = map[string]string{lte.ControlQMI: "qmi_wwan", lte.ControlMBIM: "cdc_mbim", lte.ControlWWAN: "wwan"}[m.Control]
	}
	return &radio
}
