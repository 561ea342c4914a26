// Package httplimit bounds what HTTP clients can make the line server hold: open connections
// (in all and per client address) and time, with a write deadline on ordinary answers and a
// progress-based deadline on downloads and live streams, which may rightly last for hours but
// must not be held by a client that stopped reading.
package httplimit

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// Listener caps the connections a net.Listener hands out. A connection beyond a cap is
// answered with a short 503 and closed, so the client sees why.
type Listener struct {
	net.Listener
	perClient int
	total     int
	log       *slog.Logger

	mu    sync.Mutex
	open  int
	byIP  map[netip.Addr]int
	warns map[netip.Addr]time.Time // last refusal logged, to keep a flood out of the log
}

// NewListener wraps ln: at most total open connections, at most perClient from one address.
func NewListener(ln net.Listener, perClient, total int, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, perClient: perClient, total: total, log: log,
		byIP: map[netip.Addr]int{}, warns: map[netip.Addr]time.Time{}}
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrOf(c.RemoteAddr())
		if why := l.take(ip); why != "" {
			go refuse(c, why)
			continue
		}
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}

// take counts a new connection from ip, or says why it is refused.
func (l *Listener) take(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	why := ""
	switch {
	case l.open >= l.total:
		why = "too many connections to this server"
	case l.byIP[ip] >= l.perClient:
		why = "too many connections from your address"
	}
	if why != "" {
		if now := time.Now(); now.Sub(l.warns[ip]) > 10*time.Second {
			l.warns[ip] = now
			l.log.Warn("connection refused", "client", ip.String(), "reason", why, "open", l.open, "from_client", l.byIP[ip])
		}
		return why
	}
	l.open++
	l.byIP[ip]++
	return ""
}

func (l *Listener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byIP[ip] <= 1 {
		delete(l.byIP, ip)
		delete(l.warns, ip)
	} else {
		l.byIP[ip]--
	}
}

// Open is the number of connections held, for tests and metrics.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// refuse answers a connection over a cap without reading its request (it has not been read
// and may never come) and closes it.
func refuse(c net.Conn, why string) {
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	body := `{"error":"` + why + `; try again"}` + "\n"
	io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"+
		"Connection: close\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// conn gives its slot back once, when closed.
type conn struct {
	net.Conn
	l    *Listener
	ip   netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}

// Deadlines are the per-request time bounds of [Handler].
type Deadlines struct {
	// Body bounds reading the request (the server's read-header timeout covers the headers).
	Body time.Duration
	// Write bounds writing an ordinary answer.
	Write time.Duration
	// Stall bounds the time a streaming answer may wait for the client to take data.
	Stall time.Duration
	// Streaming reports whether a request's answer is a download or a live stream; those get
	// the stall bound instead of the read and write ones.
	Streaming func(r *http.Request) bool
	// MaxStreamsPerClient and MaxStreams cap the streaming answers running at once for one
	// client address and in all (0: no cap). A stalled download holds its connection and
	// its socket buffers until the stall bound ends it; the caps bound how many there are.
	MaxStreamsPerClient, MaxStreams int
}

// StreamingPrefixes is a Deadlines.Streaming for answers under the given path prefixes.
func StreamingPrefixes(prefixes ...string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(r.URL.Path, p) {
				return true
			}
		}
		return false
	}
}

// Handler applies d to every request next serves.
func Handler(next http.Handler, d Deadlines) http.Handler {
	streams := &counter{perClient: d.MaxStreamsPerClient, total: d.MaxStreams, byIP: map[netip.Addr]int{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.Streaming != nil && d.Streaming(r) {
			ip := netip.Addr{}
			if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
				ip = ap.Addr().Unmap()
			}
			if why := streams.take(ip); why != "" {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":"`+why+`; try again"}`+"\n")
				return
			}
			defer streams.release(ip)
			next.ServeHTTP(&stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: d.Stall}, r)
			return
		}
		rc := http.NewResponseController(w)
		now := time.Now()
		// Not supported only by writers that are not a server connection (tests' recorders).
		rc.SetReadDeadline(now.Add(d.Body))
		rc.SetWriteDeadline(now.Add(d.Write))
		next.ServeHTTP(w, r)
	})
}

// counter counts running streams by client address.
type counter struct {
	perClient, total int
	mu               sync.Mutex
	open             int
	byIP             map[netip.Addr]int
}

func (c *counter) take(ip netip.Addr) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total > 0 && c.open >= c.total {
		return "too many downloads from this server at once"
	}
	if c.perClient > 0 && c.byIP[ip] >= c.perClient {
		return "too many downloads from your address at once"
	}
	c.open++
	c.byIP[ip]++
	return ""
}

func (c *counter) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
	if c.byIP[ip] <= 1 {
		delete(c.byIP, ip)
	} else {
		c.byIP[ip]--
	}
}

// stallChunk is how much of a file is handed to the kernel (sendfile) per write deadline: a
// client must take at least this much per stall timeout (128 KiB in 30 s is 4.4 kB/s).
const stallChunk = 128 << 10

// stallWriter moves the write deadline forward before each piece of the answer, so a client
// that keeps reading is never cut however long the download, and one that stops is dropped
// after one stall timeout.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (s *stallWriter) extend() { s.rc.SetWriteDeadline(time.Now().Add(s.stall)) }

func (s *stallWriter) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		s.extend()
		k, err := s.ResponseWriter.Write(b[:min(len(b), stallChunk)])
		n += k
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

// ReadFrom hands the source over in chunks, keeping sendfile(2) for files: net.TCPConn
// unwraps one io.LimitedReader around an *os.File.
func (s *stallWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := s.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{s}, src)
	}
	var total int64
	if lr, ok := src.(*io.LimitedReader); ok {
		if _, isFile := lr.R.(*os.File); isFile {
			for lr.N > 0 {
				s.extend()
				n, err := rf.ReadFrom(&io.LimitedReader{R: lr.R, N: min(lr.N, stallChunk)})
				total += n
				lr.N -= n
				if err != nil || n == 0 {
					return total, err
				}
			}
			return total, nil
		}
	}
	if f, ok := src.(*os.File); ok {
		for {
			s.extend()
			n, err := rf.ReadFrom(&io.LimitedReader{R: f, N: stallChunk})
			total += n
			if err != nil || n == 0 {
				return total, err
			}
		}
	}
	return io.Copy(writerOnly{s}, src)
}

func (s *stallWriter) Flush() {
	s.extend()
	s.rc.Flush()
}

func (s *stallWriter) FlushError() error {
	s.extend()
	return s.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// writerOnly hides ReadFrom so that io.Copy does not recurse.
type writerOnly struct{ io.Writer }
