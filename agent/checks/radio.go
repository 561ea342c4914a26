package checks

// radioKinds lists the radio check kinds (wifi.scan, wifi.throughput, bluetooth.scan) with
// their kernel-backed implementations. This file belongs to the owner of agent/probe/wifi and
// agent/probe/bluetooth, who replaces this placeholder with an adapter that wraps those
// probes as Kinds (see the package doc for Define). Until then there are no radio kinds, and
// scenarios that use them fail lint with "unknown check kind".
func radioKinds(sys System) []Kind {
	_ = sys
	return nil
}
