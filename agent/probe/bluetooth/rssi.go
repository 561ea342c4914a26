package bluetooth

import (
	"fmt"
	"math"
)

// RSSIUnknown is the RSSI a controller reports when it has none (HCI's 127, "RSSI not
// available"): BlueZ's btvirt controller reports LE advertisements so. It is no signal
// level, and must never pass a minimum.
const RSSIUnknown = 127

// rssiRank orders reports by RSSI with an unknown RSSI below every real one.
func rssiRank(r int) int {
	if r == RSSIUnknown {
		return math.MinInt
	}
	return r
}

// rssiText is the RSSI for messages.
func rssiText(r int) string {
	if r == RSSIUnknown {
		return "RSSI not reported"
	}
	return fmt.Sprintf("%d dBm", r)
}
