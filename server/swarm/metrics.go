package swarm

import "github.com/prometheus/client_golang/prometheus"

var (
	descPeers = prometheus.NewDesc("flashline_swarm_peers",
		"Peers the server's seed is connected to, by image file.", []string{"image"}, nil)
	descAnnounced = prometheus.NewDesc("flashline_swarm_tracker_peers",
		"Devices announced to the tracker (the server's seed not counted), by image file and whether they have the whole image.",
		[]string{"image", "state"}, nil)
	descUploaded = prometheus.NewDesc("flashline_swarm_seed_upload_bytes_total",
		"Image bytes the server's seed sent to peers over BitTorrent, by image file (the web seed is counted in flashline_image_http_bytes_total).",
		[]string{"image"}, nil)
)

// Collector returns the swarm's Prometheus collector; its figures are read from the seed and
// the tracker when /metrics is scraped.
func (s *Swarm) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Swarm }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPeers
	ch <- descAnnounced
	ch <- descUploaded
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.s.Stats() {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(st.Peers), st.File)
		ch <- prometheus.MustNewConstMetric(descAnnounced, prometheus.GaugeValue, float64(st.Seeders), st.File, "seeder")
		ch <- prometheus.MustNewConstMetric(descAnnounced, prometheus.GaugeValue, float64(st.Leechers), st.File, "leecher")
		ch <- prometheus.MustNewConstMetric(descUploaded, prometheus.CounterValue, float64(st.Uploaded), st.File)
	}
}
