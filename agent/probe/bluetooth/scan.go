package bluetooth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"
)

// Transport carries management packets: every Read returns one event and
// every Write sends one command. *Socket is the real one.
type Transport interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SetReadDeadline(t time.Time) error
}

// Request says what a scan must find.
type Request struct {
	// Address is the peer to find.
	Address net.HardwareAddr
	// Kind is the discovery to run (default Both).
	Kind Discovery
	// MinRSSI, when set, is the weakest acceptable RSSI in dBm.
	MinRSSI *int
	// ControllerWait is how long to wait for a controller to appear when
	// none exists yet (modules and firmware load asynchronously at boot).
	ControllerWait time.Duration
	Logger         *slog.Logger
}

// Result is what a successful (or failed) scan measured.
type Result struct {
	// Controller is the index (hciN) and Info describes it.
	Controller int
	Info       Info
	// Found is the matching report with the strongest RSSI.
	Found *Device
	// Seen lists every distinct address reported, for failure messages.
	Seen []Device
	// Rounds is the number of discovery runs started.
	Rounds int
}

// ErrNoController means no Bluetooth controller exists.
var ErrNoController = errors.New("no Bluetooth controller")

// ErrController means the controller refused to power on, enable LE or
// discover (blocked by a hardware rfkill switch, broken firmware...).
var ErrController = errors.New("controller failure")

// ErrNotFound means discovery ran until the deadline without finding the
// address (or only below the minimum RSSI).
var ErrNotFound = errors.New("peer not found")

// Scan powers the first controller and runs discovery until req.Address is
// reported with at least req.MinRSSI or ctx ends. The Result is filled in
// as far as the scan got, also on error.
func Scan(ctx context.Context, tr Transport, req Request) (Result, error) {
	if len(req.Address) != 6 {
		return Result{}, fmt.Errorf("bluetooth scan: address %q is not a Bluetooth address", req.Address)
	}
	if req.Kind == 0 {
		req.Kind = Both
	}
	if req.Logger == nil {
		req.Logger = slog.New(slog.DiscardHandler)
	}
	if req.ControllerWait == 0 {
		req.ControllerWait = 5 * time.Second
	}
	m := &mgmt{tr: tr, log: req.Logger}
	stop := context.AfterFunc(ctx, func() { _ = tr.SetReadDeadline(time.Now()) })
	defer stop()

	var res Result
	index, err := m.controller(ctx, req.ControllerWait)
	if err != nil {
		return res, err
	}
	res.Controller = int(index)
	if r, err := m.command(ctx, opReadInfo, index, nil); err == nil && r.Status == 0 {
		res.Info, _ = parseInfo(r.Params)
	}
	if req.Kind&LE != 0 {
		if r, err := m.command(ctx, opSetLE, index, []byte{1}); err != nil {
			return res, err
		} else if r.Status != 0 && !(r.Status == statusNotSupported && req.Kind != LE) {
			return res, fmt.Errorf("%w: hci%d: enable LE: %v", ErrController, index, r.Status)
		}
	}
	r, err := m.command(ctx, opSetPowered, index, []byte{1})
	if err != nil {
		return res, err
	}
	if r.Status != 0 {
		return res, fmt.Errorf("%w: hci%d: power on: %v", ErrController, index, r.Status)
	}
	defer func() {
		// Leave the controller idle for the next step; the context may be
		// over already, so use a short one of our own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = tr.SetReadDeadline(time.Time{})
		_, _ = m.command(sctx, opStopDiscovery, index, []byte{byte(req.Kind)})
	}()

	seen := map[string]int{}
	for {
		r, err := m.command(ctx, opStartDiscovery, index, []byte{byte(req.Kind)})
		if err != nil {
			return res, m.notFound(res, req, err)
		}
		switch r.Status {
		case 0:
		case statusBusy:
			// A discovery of another kind may still be running; stop it.
			_, _ = m.command(ctx, opStopDiscovery, index, []byte{byte(req.Kind)})
			if !sleep(ctx, 200*time.Millisecond) {
				return res, m.notFound(res, req, ctx.Err())
			}
			continue
		default:
			return res, fmt.Errorf("%w: hci%d: start %s discovery: %v", ErrController, index, req.Kind, r.Status)
		}
		res.Rounds++
		for running := true; running; {
			ev, err := m.next(ctx)
			if err != nil {
				return res, m.notFound(res, req, err)
			}
			if ev.Index != index {
				continue
			}
			switch ev.Code {
			case evDiscovering:
				running = !(len(ev.Data) >= 2 && ev.Data[1] == 0)
			case evIndexRemoved:
				return res, fmt.Errorf("%w: hci%d removed during discovery", ErrController, index)
			case evDeviceFound:
				d, err := parseDeviceFound(ev.Data)
				if err != nil {
					m.log.Warn("bluetooth: bad device report", "err", err)
					continue
				}
				m.log.Debug("bluetooth: device found", "address", d.Address, "type", d.AddressType, "rssi", d.RSSI, "name", d.Name)
				key := d.Address.String()
				if i, ok := seen[key]; ok {
					if rssiRank(d.RSSI) > rssiRank(res.Seen[i].RSSI) {
						res.Seen[i] = d
					}
				} else {
					seen[key] = len(res.Seen)
					res.Seen = append(res.Seen, d)
				}
				if !sameAddr(d.Address, req.Address) {
					continue
				}
				if res.Found == nil || rssiRank(d.RSSI) > rssiRank(res.Found.RSSI) {
					found := d
					res.Found = &found
				}
				if req.MinRSSI == nil || (d.RSSI != RSSIUnknown && d.RSSI >= *req.MinRSSI) {
					return res, nil
				}
			}
		}
	}
}

func sameAddr(a, b net.HardwareAddr) bool { return strings.EqualFold(a.String(), b.String()) }

// notFound turns the end of the scan into the failure a test engineer
// needs: the peer was never seen, or only too weak, and what was seen.
func (m *mgmt) notFound(res Result, req Request, cause error) error {
	if cause != nil && !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, context.Canceled) && !isTimeout(cause) {
		return cause
	}
	if res.Found != nil && req.MinRSSI != nil {
		if res.Found.RSSI == RSSIUnknown {
			return fmt.Errorf("%w: %s seen, but with no RSSI (the controller reported 127, not available), so the minimum %d dBm cannot be checked", ErrNotFound, req.Address, *req.MinRSSI)
		}
		return fmt.Errorf("%w: %s seen at %d dBm, below the minimum %d dBm", ErrNotFound, req.Address, res.Found.RSSI, *req.MinRSSI)
	}
	var others []string
	for _, d := range res.Seen {
		others = append(others, fmt.Sprintf("%s (%s)", strings.ToUpper(d.Address.String()), rssiText(d.RSSI)))
	}
	slices.Sort(others)
	seen := "nothing"
	if len(others) > 0 {
		seen = strings.Join(others, ", ")
	}
	return fmt.Errorf("%w: %s not found by %s discovery on hci%d after %d round(s); saw %s",
		ErrNotFound, strings.ToUpper(req.Address.String()), req.Kind, res.Controller, res.Rounds, seen)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
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

// mgmt runs commands on the socket and queues events that arrive while a
// command waits for its result, so none is lost.
type mgmt struct {
	tr      Transport
	log     *slog.Logger
	pending []event
	buf     [4096]byte
}

func (m *mgmt) read(ctx context.Context) (event, error) {
	for {
		if err := ctx.Err(); err != nil {
			return event{}, err
		}
		n, err := m.tr.Read(m.buf[:])
		if err != nil {
			if ctx.Err() != nil {
				return event{}, ctx.Err()
			}
			return event{}, fmt.Errorf("read management socket: %w", err)
		}
		ev, err := parseEvent(m.buf[:n])
		if err != nil {
			m.log.Warn("bluetooth: bad management event", "err", err)
			continue
		}
		ev.Data = slices.Clone(ev.Data)
		return ev, nil
	}
}

// next returns the next event, queued ones first.
func (m *mgmt) next(ctx context.Context) (event, error) {
	if len(m.pending) > 0 {
		ev := m.pending[0]
		m.pending = m.pending[1:]
		return ev, nil
	}
	return m.read(ctx)
}

func (m *mgmt) command(ctx context.Context, opcode, index uint16, params []byte) (cmdResult, error) {
	if _, err := m.tr.Write(encodeCommand(opcode, index, params)); err != nil {
		return cmdResult{}, fmt.Errorf("send management command 0x%04x: %w", opcode, err)
	}
	for {
		ev, err := m.read(ctx)
		if err != nil {
			return cmdResult{}, fmt.Errorf("management command 0x%04x: %w", opcode, err)
		}
		if (ev.Code == evCmdComplete || ev.Code == evCmdStatus) && ev.Index == index {
			r, err := parseCmdResult(ev)
			if err == nil && r.Opcode == opcode {
				return r, nil
			}
		}
		m.pending = append(m.pending, ev)
	}
}

// controller returns the first controller index, waiting up to wait for one
// to be added.
func (m *mgmt) controller(ctx context.Context, wait time.Duration) (uint16, error) {
	r, err := m.command(ctx, opReadIndexList, NoIndex, nil)
	if err != nil {
		return 0, err
	}
	if r.Status != 0 {
		return 0, fmt.Errorf("read controller list: %v", r.Status)
	}
	idx, err := parseIndexList(r.Params)
	if err != nil {
		return 0, err
	}
	if len(idx) > 0 {
		return idx[0], nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	stop := context.AfterFunc(wctx, func() { _ = m.tr.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		ev, err := m.next(wctx)
		if err != nil {
			_ = m.tr.SetReadDeadline(time.Time{})
			if ctx.Err() == nil && (wctx.Err() != nil || isTimeout(err)) {
				return 0, fmt.Errorf("%w (waited %v)", ErrNoController, wait)
			}
			return 0, err
		}
		if ev.Code == evIndexAdded {
			_ = m.tr.SetReadDeadline(time.Time{})
			// The kernel sets the controller up right after adding it;
			// power-on would fail with "busy" while that runs.
			sleep(ctx, 500*time.Millisecond)
			return ev.Index, nil
		}
	}
}
