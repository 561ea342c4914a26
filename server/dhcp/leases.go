package dhcp

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Lease is one address bound to one client, as kept in the lease file.
type Lease struct {
	MAC      string     `json:"mac"`
	IP       netip.Addr `json:"ip"`
	Expires  time.Time  `json:"expires"`
	Hostname string     `json:"hostname,omitempty"`
	// PXE: the client first took the address as PXE firmware (it counts against the PXE
	// share of the pool, not against the others', however it renews).
	PXE bool `json:"pxe,omitempty"`
}

// leaseFile is the on-disk format. Version lets a later format be told apart.
type leaseFile struct {
	Version int     `json:"version"`
	Leases  []Lease `json:"leases"`
}

// maxPool bounds the address range so that the in-memory tables, the
// linear scans and the lease file stay small.
const maxPool = 1 << 16

// offerHold is how long an offered address stays reserved for the client it
// was offered to, waiting for its REQUEST.
const offerHold = time.Minute

// declineHold is how long an address a client declined (found in use by
// someone else) is kept out of the pool.
const declineHold = 10 * time.Minute

type entryState int

const (
	stateBound entryState = iota
	stateOffered
	stateDeclined
)

type entry struct {
	mac      string // empty for declined addresses
	expires  time.Time
	state    entryState
	hostname string
	pxe      bool
}

// pool hands out addresses from a range and keeps bound leases durably.
// Expired leases are kept (not persisted past reuse) so a returning device
// gets its previous address back while nobody else took it.
type pool struct {
	mu      sync.Mutex
	path    string // lease file; "" keeps leases in memory only
	first   uint32
	size    uint32
	exclude map[uint32]bool
	byIP    map[uint32]*entry
	byMAC   map[string]uint32
	now     func() time.Time
	log     *slog.Logger
	// nonPXEMax caps the addresses that clients which never PXE-booted may hold (offered or
	// bound, not expired); negative means no cap.
	nonPXEMax int
}

func ip4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func newPool(start, end netip.Addr, exclude []netip.Addr, path string, log *slog.Logger) (*pool, error) {
	if !start.Is4() || !end.Is4() {
		return nil, errors.New("range must be two IPv4 addresses")
	}
	if end.Less(start) {
		return nil, fmt.Errorf("range end %s is before start %s", end, start)
	}
	size := uint64(ip4(end)) - uint64(ip4(start)) + 1
	if size > maxPool {
		return nil, fmt.Errorf("range %s-%s has %d addresses, more than %d", start, end, size, maxPool)
	}
	p := &pool{
		path:    path,
		first:   ip4(start),
		size:    uint32(size),
		exclude: map[uint32]bool{},
		byIP:    map[uint32]*entry{},
		byMAC:   map[string]uint32{},
		now:     time.Now,
		log:     log,

		nonPXEMax: -1,
	}
	for _, a := range exclude {
		if a.Is4() {
			p.exclude[ip4(a)] = true
		}
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pool) inRange(v uint32) bool { return v-p.first < p.size && !p.exclude[v] }

// load reads the lease file. A missing file is an empty pool; an unreadable
// or corrupt one is an error, because starting empty could hand a device's
// address to another one.
func (p *pool) load() error {
	if p.path == "" {
		return nil
	}
	b, err := os.ReadFile(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lease file: %w", err)
	}
	var lf leaseFile
	if err := json.Unmarshal(b, &lf); err != nil {
		return fmt.Errorf("lease file %s is corrupt (move it away to start with no leases): %w", p.path, err)
	}
	if lf.Version != 1 {
		return fmt.Errorf("lease file %s has version %d, want 1", p.path, lf.Version)
	}
	for _, l := range lf.Leases {
		mac, err := net.ParseMAC(l.MAC)
		if err != nil || !l.IP.Is4() || !p.inRange(ip4(l.IP)) {
			p.log.Warn("dropped lease outside the configured range", "mac", l.MAC, "ip", l.IP.String())
			continue
		}
		key := mac.String()
		if old, ok := p.byMAC[key]; ok {
			delete(p.byIP, old)
		}
		v := ip4(l.IP)
		if e, ok := p.byIP[v]; ok {
			delete(p.byMAC, e.mac)
		}
		p.byIP[v] = &entry{mac: key, expires: l.Expires, state: stateBound, hostname: l.Hostname, pxe: l.PXE}
		p.byMAC[key] = v
	}
	return nil
}

// save writes every bound lease atomically: a temporary file in the same
// directory, fsync, rename over the old file, fsync of the directory. A crash
// leaves either the old or the new file, never a torn one.
func (p *pool) save() error {
	if p.path == "" {
		return nil
	}
	lf := leaseFile{Version: 1, Leases: []Lease{}}
	for v, e := range p.byIP {
		if e.state == stateBound {
			lf.Leases = append(lf.Leases, Lease{MAC: e.mac, IP: addr4(v), Expires: e.expires.UTC(), Hostname: e.hostname, PXE: e.pxe})
		}
	}
	slices.SortFunc(lf.Leases, func(a, b Lease) int { return a.IP.Compare(b.IP) })
	b, err := json.MarshalIndent(lf, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(p.path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(p.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save leases: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save leases: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("save leases: sync %s: %w", dir, err)
		}
	}
	return nil
}

// free reports whether v can be given to mac now.
func (p *pool) free(v uint32, mac string, now time.Time) bool {
	if !p.inRange(v) {
		return false
	}
	e, ok := p.byIP[v]
	return !ok || e.mac == mac && e.state != stateDeclined || now.After(e.expires)
}

// errNonPXEShare refuses a new address to a client that did not PXE-boot when such clients
// already hold their share of the pool.
var errNonPXEShare = errors.New("the addresses for clients that did not PXE-boot are all taken (limits.dhcp)")

// mayTake reports whether mac, which is (pxe) or is not PXE firmware, may be given an address
// it does not hold yet. A MAC the pool knows (its current or previous address) always may: it
// is the agent's own DHCP after the PXE boot, or a returning device. Called with p.mu held.
func (p *pool) mayTake(key string, pxe bool, now time.Time) bool {
	if pxe || p.nonPXEMax < 0 {
		return true
	}
	if _, known := p.byMAC[key]; known {
		return true
	}
	held := 0
	for _, e := range p.byIP {
		if !e.pxe && e.state != stateDeclined && e.mac != key && !now.After(e.expires) {
			held++
		}
	}
	return held < p.nonPXEMax
}

// offer is offerTo for a client counted as PXE firmware (no share applies).
func (p *pool) offer(mac net.HardwareAddr, requested netip.Addr) (netip.Addr, bool) {
	return p.offerTo(mac, requested, true)
}

// offerTo picks an address for mac and reserves it briefly: the client's
// current or previous address if still free, else the address it asks for,
// else a never-used address, else the one that expired longest ago. A client
// that is not PXE firmware (pxe false) gets nothing once such clients hold
// their share of the pool.
func (p *pool) offerTo(mac net.HardwareAddr, requested netip.Addr, pxe bool) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := mac.String()
	now := p.now()
	if !p.mayTake(key, pxe, now) {
		return netip.Addr{}, false
	}
	pick := func(v uint32) netip.Addr {
		e := p.byIP[v]
		if e == nil || e.mac != key || e.state != stateBound || now.After(e.expires) {
			wasPXE := e != nil && e.mac == key && e.pxe
			p.take(v, key, stateOffered, now.Add(offerHold), "")
			p.byIP[v].pxe = pxe || wasPXE
		}
		return addr4(v)
	}
	if v, ok := p.byMAC[key]; ok && p.free(v, key, now) {
		return pick(v), true
	}
	if requested.Is4() && p.free(ip4(requested), key, now) {
		return pick(ip4(requested)), true
	}
	var oldest uint32
	var oldestT time.Time
	found := false
	for i := range p.size {
		v := p.first + i
		if !p.inRange(v) {
			continue
		}
		e, ok := p.byIP[v]
		if !ok {
			return pick(v), true
		}
		if now.After(e.expires) && (!found || e.expires.Before(oldestT)) {
			oldest, oldestT, found = v, e.expires, true
		}
	}
	if found {
		return pick(oldest), true
	}
	return netip.Addr{}, false
}

// take records v for mac, dropping whatever mac or v had before.
func (p *pool) take(v uint32, mac string, st entryState, expires time.Time, hostname string) {
	if old, ok := p.byMAC[mac]; ok && old != v {
		delete(p.byIP, old)
	}
	if e, ok := p.byIP[v]; ok && e.mac != mac {
		delete(p.byMAC, e.mac)
	}
	p.byIP[v] = &entry{mac: mac, expires: expires, state: st, hostname: hostname}
	p.byMAC[mac] = v
}

// bind is bindTo for a client counted as PXE firmware.
func (p *pool) bind(mac net.HardwareAddr, ip netip.Addr, d time.Duration, hostname string) (Lease, error) {
	return p.bindTo(mac, ip, d, hostname, true)
}

// bindTo commits a lease after a REQUEST. It fails when the address is not
// ours to give to this client, or, for a client that is not PXE firmware and
// holds nothing yet, when such clients hold their share (a REQUEST without a
// DISCOVER must not get round the share); the caller answers with a NAK.
func (p *pool) bindTo(mac net.HardwareAddr, ip netip.Addr, d time.Duration, hostname string, pxe bool) (Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := mac.String()
	now := p.now()
	if !p.mayTake(key, pxe, now) {
		return Lease{}, errNonPXEShare
	}
	if !ip.Is4() || !p.inRange(ip4(ip)) {
		return Lease{}, fmt.Errorf("%s is not in the range", ip)
	}
	v := ip4(ip)
	if !p.free(v, key, now) {
		return Lease{}, fmt.Errorf("%s is leased to another client", ip)
	}
	exp := now.Add(d)
	// Remember what take replaces, to put it back if the lease cannot be
	// saved: answering would hand out an address that a restart forgets.
	prevV, hadV := p.byMAC[key]
	prevAtV, prevOwn := p.byIP[v], p.byIP[prevV]
	wasPXE := prevAtV != nil && prevAtV.mac == key && prevAtV.pxe
	p.take(v, key, stateBound, exp, hostname)
	p.byIP[v].pxe = pxe || wasPXE
	if err := p.save(); err != nil {
		delete(p.byIP, v)
		delete(p.byMAC, key)
		if prevAtV != nil {
			p.byIP[v] = prevAtV
			if prevAtV.mac != "" {
				p.byMAC[prevAtV.mac] = v
			}
		}
		if hadV && prevOwn != nil {
			p.byIP[prevV] = prevOwn
			p.byMAC[key] = prevV
		}
		return Lease{}, err
	}
	return Lease{MAC: key, IP: ip, Expires: exp, Hostname: hostname}, nil
}

// release ends mac's lease on ip early but remembers the pairing, so the
// device gets the same address next time if nobody else took it.
func (p *pool) release(mac net.HardwareAddr, ip netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ip.Is4() {
		return nil
	}
	e, ok := p.byIP[ip4(ip)]
	if !ok || e.mac != mac.String() {
		return nil
	}
	e.expires = p.now()
	return p.save()
}

// decline keeps ip out of the pool for a while: a client found it in use.
func (p *pool) decline(mac net.HardwareAddr, ip netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ip.Is4() || !p.inRange(ip4(ip)) {
		return nil
	}
	v := ip4(ip)
	if e, ok := p.byIP[v]; ok && e.mac != mac.String() && !p.now().After(e.expires) {
		return nil // someone else's live lease: not this client's to decline
	}
	delete(p.byMAC, mac.String())
	p.byIP[v] = &entry{expires: p.now().Add(declineHold), state: stateDeclined}
	return p.save()
}

// leases returns a copy of the bound leases, for inspection.
func (p *pool) leases() []Lease {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Lease
	for v, e := range p.byIP {
		if e.state == stateBound {
			out = append(out, Lease{MAC: e.mac, IP: addr4(v), Expires: e.expires, Hostname: e.hostname, PXE: e.pxe})
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.IP.Compare(b.IP) })
	return out
}
