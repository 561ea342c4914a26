package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/station"
	"github.com/flashline/flashline/server/store"
)

// LineView configures what the API records for the line overview. Every field is optional.
type LineView struct {
	// Stations places each device (DHCP relay information, LLDP, the configured map).
	Stations interface {
		Station(mac, serial string, lldp *protocol.LLDPNeighbor) station.Match
	}
	// Plans gives the scenario's step count, stored with the run for "step n of m".
	Plans interface {
		Plan(file string) (jobs.Plan, error)
	}
	// HeartbeatInterval is what agents that can are asked to send heartbeats at; 0: none.
	HeartbeatInterval time.Duration
}

// UnmatchedStore records devices no rule matched (store.Store does).
type UnmatchedStore interface {
	RecordUnmatched(ctx context.Context, u store.Unmatched) error
}

// HeartbeatStore records heartbeats (store.Store does).
type HeartbeatStore interface {
	Heartbeat(ctx context.Context, runID string, at time.Time) error
}

// Explainer says why no rule took a device (jobs.Issuer does).
type Explainer interface {
	Explain(inv protocol.Inventory, mac string) string
}

// placeRun fills in the station, heartbeat and step count of a run about to be started.
func (s *Server) placeRun(n *store.NewRun, h protocol.Hello, scenarioFile string) {
	lv := s.o.LineView
	if lv.Stations != nil {
		m := lv.Stations.Station(n.MAC, n.Serial, h.LLDP)
		n.Station, n.StationSource, n.StationPort = m.Name, m.Source, m.Port
	}
	n.Heartbeat = h.Heartbeat && lv.HeartbeatInterval > 0
	if lv.Plans != nil {
		if p, err := lv.Plans.Plan(scenarioFile); err == nil {
			n.StepsTotal = len(p.Steps)
		} else {
			s.log.Warn("scenario steps not counted", "scenario", scenarioFile, "err", err)
		}
	}
}

// heartbeatSeconds is the interval a job's answer asks the agent to send heartbeats at.
func (s *Server) heartbeatSeconds(h protocol.Hello) int {
	if !h.Heartbeat || s.o.LineView.HeartbeatInterval <= 0 {
		return 0
	}
	return max(1, int(s.o.LineView.HeartbeatInterval/time.Second))
}

// recordUnmatched keeps a device no rule matched for the dashboard, with why.
func (s *Server) recordUnmatched(ctx context.Context, h protocol.Hello, mac, ip string) {
	us, ok := s.o.Store.(UnmatchedStore)
	if !ok {
		return
	}
	reason := jobs.ErrNoRule.Error()
	if ex, ok := s.o.Issuer.(Explainer); ok {
		reason = ex.Explain(h.Inventory, mac)
	}
	u := store.Unmatched{MAC: mac, Serial: h.Inventory.DMI.Serial, Product: h.Inventory.DMI.Product, IP: ip,
		Reported: store.ReportedOf(h), Reason: reason}
	if st := s.o.LineView.Stations; st != nil {
		u.Station = st.Station(mac, u.Serial, h.LLDP).Name
	}
	if err := us.RecordUnmatched(context.WithoutCancel(ctx), u); err != nil {
		s.log.Warn("cannot record the unmatched device", "mac", mac, "err", err)
	}
}

// heartbeat is POST /api/v1/runs/{run}/heartbeat: the device is still there.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	var hb protocol.Heartbeat
	runID, ok := s.decodeRun(w, r, &hb)
	if !ok {
		return
	}
	if hb.RunID != "" && hb.RunID != runID {
		s.fail(w, r, http.StatusBadRequest, "invalid", fmt.Sprintf("heartbeat is for run %q but was posted to run %q", hb.RunID, runID), "run", runID)
		return
	}
	hs, ok := s.o.Store.(HeartbeatStore)
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !s.authorized(w, r, runID) {
		return
	}
	// The server's clock, not the device's: SILENT is decided against the server's.
	if s.storeFailed(w, r, hs.Heartbeat(r.Context(), runID, s.o.Now()), runID) {
		return
	}
	if s.o.Metrics != nil {
		s.o.Metrics.line.heartbeats.Inc()
	}
	w.WriteHeader(http.StatusNoContent)
}
