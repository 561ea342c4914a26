package vhci

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Peer is a remote device the emulated controller "hears".
type Peer struct {
	// Address is the peer's public address, e.g. C0:FF:EE:00:00:01.
	Address net.HardwareAddr
	// Name goes into the EIR (BR/EDR) and the LE scan response.
	Name string
	// RSSI reported for the peer, in dBm.
	RSSI int8
	// BREDR makes the peer answer inquiry; LE makes it advertise.
	BREDR, LE bool
}

// Config describes the emulated controller.
type Config struct {
	// Address is the controller's own public address.
	Address net.HardwareAddr
	// Peers are reported during discovery.
	Peers []Peer
	// ReportDelay is how long after inquiry or scan start peers are reported;
	// real controllers never answer instantly and the kernel's LE code expects
	// the scan to be running before reports arrive.
	ReportDelay time.Duration
	// InquiryTime is when the inquiry completes (default 2 s).
	InquiryTime time.Duration
	Logger      *slog.Logger
}

// Controller answers the kernel's HCI traffic on a vhci transport.
type Controller struct {
	cfg   Config
	tr    io.ReadWriter
	log   *slog.Logger
	index int

	mu sync.Mutex // serialises writes and protects scans
	// scans holds the inquiry and the LE scan state; they are independent,
	// as the kernel interleaves them and stops one while the other runs.
	scans [2]scanState
}

// scanState's gen changes every time the scan is started or stopped, so
// that delayed reports from an older scan are dropped.
type scanState struct {
	gen     uint64
	running bool
}

// The two kinds of scan.
const (
	inquiryScan = 0
	leScan      = 1
)

// DevicePath is the vhci character device.
const DevicePath = "/dev/vhci"

// Open opens /dev/vhci and creates a primary controller. Close the returned
// file to remove the controller again.
func Open(ctx context.Context, cfg Config) (*Controller, *os.File, error) {
	f, err := os.OpenFile(DevicePath, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", DevicePath, err)
	}
	c, err := New(ctx, f, cfg)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return c, f, nil
}

// New creates the controller on tr (normally /dev/vhci): it asks the driver
// for a primary controller and waits for the driver's answer with the index.
func New(ctx context.Context, tr io.ReadWriter, cfg Config) (*Controller, error) {
	if len(cfg.Address) != 6 {
		return nil, fmt.Errorf("vhci: controller address %q is not 6 bytes", cfg.Address)
	}
	for _, p := range cfg.Peers {
		if len(p.Address) != 6 {
			return nil, fmt.Errorf("vhci: peer address %q is not 6 bytes", p.Address)
		}
		if len(p.Name) > 200 {
			return nil, fmt.Errorf("vhci: peer name %q too long", p.Name)
		}
	}
	if cfg.ReportDelay == 0 {
		cfg.ReportDelay = 500 * time.Millisecond
	}
	if cfg.InquiryTime == 0 {
		cfg.InquiryTime = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: cfg, tr: tr, log: cfg.Logger}
	// Vendor packet 0xff with device type 0x00 (primary controller).
	if _, err := tr.Write([]byte{pktVendor, 0x00}); err != nil {
		return nil, fmt.Errorf("vhci: create controller: %w", err)
	}
	// The driver answers at once; don't hang on one that never does.
	if f, ok := tr.(interface{ SetReadDeadline(time.Time) error }); ok {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		stop := context.AfterFunc(wctx, func() { _ = f.SetReadDeadline(time.Now()) })
		defer func() {
			if stop() {
				return
			}
			_ = f.SetReadDeadline(time.Time{})
		}()
	}
	buf := make([]byte, 4096)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := tr.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("vhci: wait for controller index: %w", err)
		}
		if n >= 4 && buf[0] == pktVendor {
			c.index = int(binary.LittleEndian.Uint16(buf[2:4]))
			return c, nil
		}
	}
}

// Index is the hciN number the kernel gave the controller.
func (c *Controller) Index() int { return c.index }

// Serve answers HCI commands until ctx ends or the transport fails. When tr
// is an *os.File, cancelling ctx interrupts the pending read.
func (c *Controller) Serve(ctx context.Context) error {
	if f, ok := c.tr.(interface{ SetReadDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
		defer stop()
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.tr.Read(buf)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("vhci: read: %w", err)
		}
		cmd, ok, err := parseCommand(buf[:n])
		if err != nil {
			c.log.Warn("vhci: bad packet", "err", err)
			continue
		}
		if !ok {
			continue
		}
		if err := c.handle(ctx, cmd); err != nil {
			return err
		}
	}
}

func (c *Controller) write(pkt []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.tr.Write(pkt)
	if err != nil {
		return fmt.Errorf("vhci: write: %w", err)
	}
	return nil
}

// handle answers one command.
func (c *Controller) handle(ctx context.Context, cmd command) error {
	c.log.Debug("vhci: command", "opcode", fmt.Sprintf("0x%04x", cmd.Opcode), "params", len(cmd.Params))
	switch cmd.Opcode {
	case opInquiry:
		if err := c.write(commandStatus(cmd.Opcode, 0)); err != nil {
			return err
		}
		gen := c.startScan(inquiryScan)
		go c.inquiry(ctx, gen)
		return nil
	case opCreateConn, opLECreateConn:
		// The emulated peers only exist to be discovered.
		return c.write(commandStatus(cmd.Opcode, statusPageTimeout))
	case opInquiryCancel:
		c.stopScan(inquiryScan)
	case opReset:
		c.stopScan(inquiryScan)
		c.stopScan(leScan)
	case opLESetScanEnable:
		if len(cmd.Params) >= 1 && cmd.Params[0] == 1 {
			gen := c.startScan(leScan)
			go c.advertise(ctx, gen)
		} else {
			c.stopScan(leScan)
		}
	}
	return c.write(commandComplete(cmd.Opcode, c.returnParams(cmd.Opcode)))
}

const statusPageTimeout = 0x04

func (c *Controller) startScan(kind int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.scans[kind]
	s.gen++
	s.running = true
	return s.gen
}

func (c *Controller) stopScan(kind int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.scans[kind]
	s.gen++
	s.running = false
}

// current reports whether the scan of kind started as generation gen still
// runs.
func (c *Controller) current(kind int, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.scans[kind]
	return s.running && s.gen == gen
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// inquiry reports the BR/EDR peers, then completes the inquiry.
func (c *Controller) inquiry(ctx context.Context, gen uint64) {
	if !sleep(ctx, c.cfg.ReportDelay) {
		return
	}
	for _, p := range c.cfg.Peers {
		if !p.BREDR || !c.current(inquiryScan, gen) {
			continue
		}
		if err := c.write(event(evtExtInquiryResult, extInquiryResult(p))); err != nil {
			c.log.Warn("vhci: inquiry result", "err", err)
			return
		}
	}
	if !sleep(ctx, c.cfg.InquiryTime-c.cfg.ReportDelay) || !c.current(inquiryScan, gen) {
		return
	}
	c.stopScan(inquiryScan)
	if err := c.write(event(evtInquiryComplete, []byte{0})); err != nil {
		c.log.Warn("vhci: inquiry complete", "err", err)
	}
}

// advertise reports the LE peers repeatedly while the scan runs, each as an
// ADV_IND followed by its SCAN_RSP, because the kernel holds back an
// advertisement during active scanning until the scan response arrives.
func (c *Controller) advertise(ctx context.Context, gen uint64) {
	for sleep(ctx, c.cfg.ReportDelay) && c.current(leScan, gen) {
		for _, p := range c.cfg.Peers {
			if !p.LE {
				continue
			}
			for _, ev := range leReports(p) {
				if !c.current(leScan, gen) {
					return
				}
				if err := c.write(event(evtLEMeta, ev)); err != nil {
					c.log.Warn("vhci: advertising report", "err", err)
					return
				}
			}
		}
	}
}

// reversed converts a display-order address to HCI (little-endian) order.
func reversed(a net.HardwareAddr) []byte {
	b := make([]byte, 6)
	for i := range 6 {
		b[i] = a[5-i]
	}
	return b
}

// eirName is an EIR/AD structure with the complete local name.
func eirName(name string) []byte {
	if name == "" {
		return nil
	}
	return append([]byte{byte(len(name) + 1), 0x09}, name...)
}

func extInquiryResult(p Peer) []byte {
	b := make([]byte, 0, 255)
	b = append(b, 1) // one response
	b = append(b, reversed(p.Address)...)
	b = append(b, 0x01, 0x00)       // page scan repetition mode R1, reserved
	b = append(b, 0x0c, 0x02, 0x5a) // class of device: phone, smartphone
	b = append(b, 0x00, 0x00)       // clock offset
	b = append(b, byte(p.RSSI))
	eir := make([]byte, 240)
	copy(eir, eirName(p.Name))
	return append(b, eir...)
}

// LE advertising report event types.
const (
	advInd  = 0x00
	scanRsp = 0x04
)

func leReport(p Peer, typ byte, data []byte) []byte {
	b := []byte{leSubAdvertisingReport, 1, typ, 0x00} // one report, public address
	b = append(b, reversed(p.Address)...)
	b = append(b, byte(len(data)))
	b = append(b, data...)
	return append(b, byte(p.RSSI))
}

func leReports(p Peer) [][]byte {
	flags := []byte{0x02, 0x01, 0x06} // LE general discoverable, no BR/EDR
	return [][]byte{
		leReport(p, advInd, flags),
		leReport(p, scanRsp, eirName(p.Name)),
	}
}
