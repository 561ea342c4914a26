package flash

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashline/flashline/agent/flash/internal/source"
)

// progress counts what the stages have done and turns it into Progress reports: the writers
// and the read-back add their bytes, Write switches the phase, and a ticker reports a snapshot
// at most every interval. With no report function it only counts.
type progress struct {
	report   func(Progress)
	interval time.Duration
	size     int64         // image length, <= 0 while unknown
	src      source.Source // for the source's own counts; may be nil

	mu      sync.Mutex // the phase and a restart of written change together
	phase   string
	written atomic.Int64

	// The reporting goroutine's own state (the final report comes after it stopped).
	lastPhase string
	rate      float64
	lastT     time.Time
	lastW     int64
	started   time.Time
	stop      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
}

func newProgress(report func(Progress), interval time.Duration) *progress {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	return &progress{report: report, interval: interval, phase: "write"}
}

// add counts n more image bytes handled in the current phase.
func (p *progress) add(n int64) { p.written.Add(n) }

// set switches to phase; with restart >= 0 the count restarts from there (the read-back
// counts its own bytes). Both change together so that no snapshot mixes them.
func (p *progress) set(phase string, restart int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase = phase
	if restart >= 0 {
		p.written.Store(restart)
	}
}

// start begins reporting every interval for an image of size bytes (<= 0: unknown) read
// from src.
func (p *progress) start(size int64, src source.Source) {
	p.size, p.src = size, src
	p.started = time.Now()
	p.lastT = p.started
	if p.report == nil {
		return
	}
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.report(p.snapshot(time.Now()))
			case <-p.stop:
				return
			}
		}
	}()
}

// halt stops the reports; it may be called more than once.
func (p *progress) halt() {
	if p.stop == nil {
		return
	}
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
	})
}

// finish stops the ticker and reports the end at once: phase "done", the rate averaged over
// the whole flash. The final report is the one call allowed beside the interval's.
func (p *progress) finish(n int64) {
	p.halt()
	p.set("done", n)
	if p.report == nil {
		return
	}
	now := time.Now()
	pr := p.snapshot(now)
	pr.ETA = 0
	if el := now.Sub(p.started).Seconds(); el > 0 {
		pr.Rate = float64(pr.Written) / el
	}
	if pr.Total == 0 {
		pr.Total = pr.Written
	}
	p.report(pr)
}

// snapshot is the progress at now, with the rate smoothed over the snapshots of one phase.
func (p *progress) snapshot(now time.Time) Progress {
	p.mu.Lock()
	phase, w := p.phase, p.written.Load()
	p.mu.Unlock()
	if phase != p.lastPhase {
		// A new phase counts from its own start: no rate across the boundary.
		p.lastPhase, p.rate, p.lastW, p.lastT = phase, 0, w, now
	}
	if dt := now.Sub(p.lastT).Seconds(); dt > 0 {
		inst := float64(w-p.lastW) / dt
		if p.rate == 0 {
			p.rate = inst
		} else {
			p.rate = 0.7*p.rate + 0.3*inst
		}
	}
	p.lastT, p.lastW = now, w
	pr := Progress{Phase: phase, Written: w, Rate: p.rate}
	if p.size > 0 {
		pr.Total = p.size
	}
	if p.src != nil {
		pr.SourceRead, pr.SourceTotal = p.src.Stats().Read, max(p.src.Size(), 0)
	}
	switch {
	case pr.Total > 0 && p.rate > 0:
		pr.ETA = time.Duration(float64(pr.Total-w) / p.rate * float64(time.Second))
	case pr.SourceTotal > 0 && pr.SourceRead > 0 && w > 0 && p.rate > 0:
		// Scale the image bytes still to come by the source's progress.
		est := float64(w) * float64(pr.SourceTotal) / float64(pr.SourceRead)
		pr.ETA = time.Duration((est - float64(w)) / p.rate * float64(time.Second))
	}
	pr.ETA = max(pr.ETA, 0)
	return pr
}
