package protocol

import "time"

// PathHeartbeat takes the run id with fmt.Sprintf. A heartbeat says "still here" between
// events (a long step, the flash): the line marks a device SILENT when it stops, long before
// its job expires. Only agents whose hello said Heartbeat are asked to send them (and only
// by servers that answer HeartbeatSeconds), so old agents and old servers never meet it.
//
//	POST /api/v1/runs/{run}/heartbeat  Heartbeat -> 204 (authenticated as events are)
const PathHeartbeat = "/api/v1/runs/%s/heartbeat"

// Heartbeat is the body of a heartbeat: where the device is, as far as it knows.
type Heartbeat struct {
	RunID  string    `json:"run_id"`
	Serial string    `json:"serial"`
	Time   time.Time `json:"time"`
	// Secret is the run's secret; clients send it as the Authorization header.
	Secret string `json:"-"`
}

// LLDPNeighbor is what the switch port the device's boot NIC is plugged into announced over
// LLDP (IEEE 802.1AB): the line server maps it to the device's station. IDs are rendered as
// text: MAC subtypes as aa:bb:cc:dd:ee:ff, network addresses as IPs, the rest as sent.
type LLDPNeighbor struct {
	ChassisID       string `json:"chassis_id,omitempty"`
	PortID          string `json:"port_id,omitempty"`
	PortDescription string `json:"port_description,omitempty"`
	SystemName      string `json:"system_name,omitempty"`
}
