package dashboard

import "net/http"

// SwarmImage is one image's share of the line's BitTorrent swarm, for the swarm panel.
type SwarmImage struct {
	File string `json:"file"`
	// Peers the server's seed is connected to; devices announced with and without the whole
	// image.
	Peers    int `json:"peers"`
	Seeders  int `json:"seeders"`
	Leechers int `json:"leechers"`
	// What left the server for this image: over BitTorrent from the seed, and over HTTP
	// (plain downloads and web seed requests).
	SeedBytes int64 `json:"seed_bytes"`
	HTTPBytes int64 `json:"http_bytes"`
	// Length is the image file's size, to read the server's bytes as copies of the image.
	Length int64 `json:"length"`
}

// swarm answers /dashboard/api/swarm: the swarm figures, or enabled false.
func (d *Dashboard) swarm(w http.ResponseWriter, r *http.Request) {
	if d.o.Swarm == nil {
		writeJSON(w, http.StatusOK, map[string]any{"enabled": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"enabled": true, "images": d.o.Swarm()})
}
