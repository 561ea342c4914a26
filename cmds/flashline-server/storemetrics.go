package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashline/flashline/server/store"
)

// registerStoreMetrics exports the line's queue for the plant database: what waits, what was
// refused, and whether the plant database answers (always 1 with SQLite alone).
func registerStoreMetrics(reg prometheus.Registerer, st store.Backend) {
	backlog := func() store.Backlog {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := st.Backlog(ctx)
		if err != nil {
			return store.Backlog{Pending: -1, Failed: -1}
		}
		return b
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flashline_store_queue_pending",
			Help: "Changes (runs, events, results) waiting in the line's queue for the plant database (-1: unreadable)."},
			func() float64 { return float64(backlog().Pending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flashline_store_queue_failed",
			Help: "Changes the plant database refused, kept in the line's queue."},
			func() float64 { return float64(backlog().Failed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flashline_store_plant_reachable",
			Help: "1 when the last attempt to reach the plant database succeeded (always 1 without one)."},
			func() float64 {
				if backlog().Reachable {
					return 1
				}
				return 0
			}),
	)
}
