package hwsimap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// mac80211_hwsim's generic netlink interface; the values are the ABI declared in
// drivers/net/wireless/mac80211_hwsim.h.
const (
	hwsimFamily = "MAC80211_HWSIM"

	hwsimCmdRegister    = 1
	hwsimCmdFrame       = 2
	hwsimCmdTxInfoFrame = 3

	hwsimAttrAddrReceiver    = 1
	hwsimAttrAddrTransmitter = 2
	hwsimAttrFrame           = 3
	hwsimAttrFlags           = 4
	hwsimAttrRxRate          = 5
	hwsimAttrSignal          = 6
	hwsimAttrTxInfo          = 7
	hwsimAttrCookie          = 8
	hwsimAttrFreq            = 19

	hwsimTxCtlNoAck = 1 << 1
	hwsimTxStatAck  = 1 << 2
)

// MediumConfig sets what the relay does to frames.
type MediumConfig struct {
	// SignalDBm is the signal every radio receives every frame with.
	SignalDBm int
	// Radios are hwsim radio medium addresses (42:00:00:00:NN:00) known
	// up front; radios are also learnt from the frames they send.
	Radios []net.HardwareAddr
	Logger *slog.Logger
}

// MediumAddr is the address hwsim's medium uses for the radio whose
// permanent interface address is perm: the same with the 0x40 bit set.
func MediumAddr(perm net.HardwareAddr) net.HardwareAddr {
	a := append(net.HardwareAddr(nil), perm...)
	a[0] |= 0x40
	return a
}

// Medium relays every frame of every hwsim radio (as wmediumd does), so that
// receivers see a chosen signal instead of hwsim's fixed one. Once it has
// registered, radios only hear each other through it.
type Medium struct {
	c      *genetlink.Conn
	family genetlink.Family
	cfg    MediumConfig
	log    *slog.Logger

	mu     sync.Mutex
	radios map[string]net.HardwareAddr
}

// NewMedium registers as hwsim's medium on c.
func NewMedium(c *genetlink.Conn, cfg MediumConfig) (*Medium, error) {
	f, err := c.GetFamily(hwsimFamily)
	if err != nil {
		return nil, fmt.Errorf("hwsim medium: %w", err)
	}
	m := &Medium{c: c, family: f, cfg: cfg, log: cfg.Logger, radios: map[string]net.HardwareAddr{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	for _, r := range cfg.Radios {
		m.radios[r.String()] = r
	}
	if _, err := c.Execute(genetlink.Message{Header: genetlink.Header{Command: hwsimCmdRegister, Version: f.Version}},
		f.ID, netlink.Request|netlink.Acknowledge); err != nil {
		return nil, fmt.Errorf("hwsim medium: register: %w", err)
	}
	return m, nil
}

// Serve relays frames until ctx ends.
func (m *Medium) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = m.c.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		msgs, _, err := m.c.Receive()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if kernelNack(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hwsim medium: receive: %w", err)
		}
		for _, msg := range msgs {
			if msg.Header.Command != hwsimCmdFrame {
				continue
			}
			tx, err := parseTxFrame(msg.Data)
			if err != nil {
				m.log.Warn("hwsim medium: bad frame", "err", err)
				continue
			}
			if err := m.relay(tx); err != nil {
				m.log.Warn("hwsim medium: relay", "err", err)
			}
		}
	}
}

// kernelNack reports whether err is the kernel's answer to one of our
// messages (or a receive buffer overrun) rather than a broken socket: hwsim
// answers EINVAL to every frame it drops (a receiver that is idle or on
// another channel), which is normal, as for wmediumd.
func kernelNack(err error) bool {
	var oe *netlink.OpError
	if !errors.As(err, &oe) {
		return false
	}
	if _, ok := oe.Err.(syscall.Errno); ok {
		return true // from an error message, not from the system call
	}
	return errors.Is(err, syscall.ENOBUFS)
}

// txFrame is a frame a radio sent.
type txFrame struct {
	Transmitter net.HardwareAddr
	Frame       []byte
	Flags       uint32
	TxInfo      []byte // struct hwsim_tx_rate[4]: s8 idx, u8 count
	Cookie      uint64
	Freq        uint32
	HasFreq     bool
}

func parseTxFrame(b []byte) (txFrame, error) {
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return txFrame{}, err
	}
	var f txFrame
	for _, a := range attrs {
		switch a.Type {
		case hwsimAttrAddrTransmitter:
			if len(a.Data) == 6 {
				f.Transmitter = net.HardwareAddr(a.Data)
			}
		case hwsimAttrFrame:
			f.Frame = a.Data
		case hwsimAttrFlags:
			if len(a.Data) == 4 {
				f.Flags = binary.NativeEndian.Uint32(a.Data)
			}
		case hwsimAttrTxInfo:
			f.TxInfo = a.Data
		case hwsimAttrCookie:
			if len(a.Data) == 8 {
				f.Cookie = binary.NativeEndian.Uint64(a.Data)
			}
		case hwsimAttrFreq:
			if len(a.Data) == 4 {
				f.Freq, f.HasFreq = binary.NativeEndian.Uint32(a.Data), true
			}
		}
	}
	if f.Transmitter == nil || len(f.Frame) < 10 {
		return txFrame{}, fmt.Errorf("frame without transmitter or body")
	}
	return f, nil
}

func (m *Medium) send(cmd uint8, attrs func(*netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	attrs(ae)
	data, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = m.c.Send(genetlink.Message{Header: genetlink.Header{Command: cmd, Version: m.family.Version}, Data: data},
		m.family.ID, netlink.Request)
	return err
}

func (m *Medium) relay(tx txFrame) error {
	m.mu.Lock()
	m.radios[tx.Transmitter.String()] = append(net.HardwareAddr(nil), tx.Transmitter...)
	var rx []net.HardwareAddr
	for k, r := range m.radios {
		if k != tx.Transmitter.String() {
			rx = append(rx, r)
		}
	}
	m.mu.Unlock()
	rate := uint32(0)
	if len(tx.TxInfo) >= 1 && int8(tx.TxInfo[0]) >= 0 {
		rate = uint32(tx.TxInfo[0])
	}
	signal := uint32(int32(m.cfg.SignalDBm))
	for _, r := range rx {
		err := m.send(hwsimCmdFrame, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(hwsimAttrAddrReceiver, r)
			ae.Bytes(hwsimAttrFrame, tx.Frame)
			ae.Uint32(hwsimAttrRxRate, rate)
			ae.Uint32(hwsimAttrSignal, signal)
			if tx.HasFreq {
				ae.Uint32(hwsimAttrFreq, tx.Freq)
			}
		})
		if err != nil {
			return fmt.Errorf("deliver to %s: %w", r, err)
		}
	}
	// Report the transmission as acknowledged (unless no ACK was wanted),
	// as a perfect medium would.
	flags := tx.Flags
	if flags&hwsimTxCtlNoAck == 0 {
		flags |= hwsimTxStatAck
	}
	return m.send(hwsimCmdTxInfoFrame, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(hwsimAttrAddrTransmitter, tx.Transmitter)
		ae.Uint32(hwsimAttrFlags, flags)
		ae.Uint32(hwsimAttrSignal, signal)
		if tx.TxInfo != nil {
			ae.Bytes(hwsimAttrTxInfo, tx.TxInfo)
		}
		ae.Uint64(hwsimAttrCookie, tx.Cookie)
	})
}
