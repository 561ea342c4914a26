package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashline/flashline/server/api"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/dashboard"
	"github.com/flashline/flashline/server/dhcp"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/station"
	"github.com/flashline/flashline/server/store"
)

// newPlaces is the line's station map, fed by the DHCP server's relay information.
func newPlaces(cfg *config.Config) *station.Resolver {
	r := &station.Resolver{Map: station.NewMap(cfg.Stations)}
	if cfg.DHCP.Enabled {
		r.Seen = station.NewSeen(0, cfg.Jobs.TTL)
	}
	return r
}

// recordRelay notes the relay information of a DHCP request for the station of the hello
// that follows.
func recordRelay(places *station.Resolver, r dhcp.Reply, log *slog.Logger) {
	if places.Seen == nil || r.RelayInfo == nil {
		return
	}
	ri, err := station.ParseRelayInfo(r.RelayInfo)
	if err != nil {
		log.Debug("relay agent information not understood", "mac", r.MAC.String(), "err", err)
		return
	}
	places.Seen.Record(r.MAC, ri)
}

func apiLineView(cfg *config.Config, places *station.Resolver) api.LineView {
	lv := api.LineView{Stations: places, HeartbeatInterval: cfg.Heartbeat.Interval}
	if cfg.ScenariosDir != "" {
		lv.Plans = jobs.NewPlans(cfg.ScenariosDir)
	}
	return lv
}

func dashboardLineView(cfg *config.Config) dashboard.LineView {
	lv := dashboard.LineView{HeartbeatTimeout: cfg.Heartbeat.Timeout, Shifts: cfg.ShiftStarts()}
	for _, s := range cfg.Stations {
		lv.Stations = append(lv.Stations, s.Name)
	}
	if cfg.ScenariosDir != "" {
		lv.Plans = jobs.NewPlans(cfg.ScenariosDir)
	}
	return lv
}

// registerLineMetrics exports the devices on the line now (runs under way, not silent).
func registerLineMetrics(reg prometheus.Registerer, st store.Backend, cfg *config.Config) {
	on, ok := st.(interface {
		OnLineNow(ctx context.Context, line string, now time.Time, timeout time.Duration) (int64, error)
	})
	if !ok {
		return
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flashline_devices_on_line",
		Help: "Devices of this line whose run is under way and not silent (-1: unreadable)."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := on.OnLineNow(ctx, st.Line(), time.Now(), cfg.Heartbeat.Timeout)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
}
