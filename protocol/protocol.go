// Package protocol defines the wire types exchanged between flashline-agent and the line server
// over HTTP+JSON under /api/v1. Both sides import this package, so a field added here is seen by
// both in the same build; old agents must keep working, so fields are only ever added.
//
// The exchange:
//
//	POST /api/v1/hello                 Hello            -> HelloResponse (a signed job, or wait)
//	POST /api/v1/runs/{run}/events     EventBatch       -> EventAck      (idempotent by Seq)
//	PUT  /api/v1/runs/{run}/result     Result           -> ResultAck     (idempotent by run id)
//	GET  <job.Scenario.URL>, GET <job.Image.URL>        (verified through hashes in the job)
//
// Device writes are authenticated: the HelloResponse that carries a job also carries a per-run
// secret (HelloResponse.RunSecret, never inside the signed job). Events and the result of that
// run must send it as "Authorization: Bearer <secret>" (see auth.go); the server answers 401
// and stores nothing without it. The secret travels in a header, not in the body, because
// bodies are stored and exported.
//
// Beside the wire types the package holds what both sides must agree on: signing and opening
// jobs (sign.go), the operator key and pinned CA as the build hands them over (keys.go), the
// disk transports a rule may name (transport.go) and what a bad server URL is (url.go).
// Subpackages: bmap (the block maps served beside images) and sink (the Wi-Fi throughput
// sink's exchange). The package imports nothing of the agent or the server.
package protocol

import (
	"time"
)

// Version is the protocol version; it is also the path segment of the API.
const Version = "v1"

// API paths, relative to the server's base URL.
const (
	PathHello = "/api/v1/hello"
	// PathEvents and PathResult take the run id with fmt.Sprintf.
	PathEvents = "/api/v1/runs/%s/events"
	PathResult = "/api/v1/runs/%s/result"
)

// MaxBodyBytes bounds every request body the server accepts; agents never need more.
const MaxBodyBytes = 4 << 20

// Hello is the agent's first request: who it is and what hardware it has.
type Hello struct {
	AgentVersion string `json:"agent_version"`
	BootMAC      string `json:"boot_mac"` // the NIC the device netbooted from, aa:bb:cc:dd:ee:ff
	IP           string `json:"ip,omitempty"`
	// Nonce is fresh per boot; the server puts it into the signed job so that a recorded job
	// cannot be replayed to this device later.
	Nonce     string    `json:"nonce"`
	Inventory Inventory `json:"inventory"`
	// Timings measured on the device before Hello (kernel boot, module loading, DHCP...).
	Timings []PhaseTiming `json:"timings,omitempty"`
	// Line-view fields (line.go): the switch port heard on the boot NIC, and whether this
	// agent sends heartbeats when asked to.
	LLDP      *LLDPNeighbor `json:"lldp,omitempty"`
	Heartbeat bool          `json:"heartbeat,omitempty"`
}

// HelloResponse carries the device's job, or tells it to wait and ask again.
type HelloResponse struct {
	Job *SignedJob `json:"job,omitempty"`
	// Message is shown on the device console when there is no job (e.g. "no rule matches
	// product GM-Box 3").
	Message    string `json:"message,omitempty"`
	RetryAfter int    `json:"retry_after_seconds,omitempty"`
	// RunSecret authenticates this run's events and result (see the package doc). It is
	// outside the signed job on purpose: the job is proof of what the operator decided and
	// may be shown or kept; the secret must not be.
	RunSecret string `json:"run_secret,omitempty"`
	// HeartbeatSeconds, when set (and the hello said Heartbeat), asks the agent to send a
	// Heartbeat this often while the run lasts (line.go).
	HeartbeatSeconds int `json:"heartbeat_seconds,omitempty"`
}

// SignedJob carries a job as the exact bytes that were signed. The agent verifies Signature
// over Job before decoding it, so no canonical-JSON re-encoding is ever needed.
type SignedJob struct {
	Job       []byte `json:"job"`                 // JSON encoding of Job (base64 on the wire)
	Signature []byte `json:"signature,omitempty"` // ed25519 over Job; empty when unsigned
	KeyID     string `json:"key_id,omitempty"`    // hex SHA-256 prefix of the signing public key
}

// Job tells one device, for one run, what to test and what to flash.
type Job struct {
	RunID     string    `json:"run_id"`
	Nonce     string    `json:"nonce"` // the agent's own nonce from Hello echoed back when given
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Device    Identity  `json:"device"`
	Scenario  Artifact  `json:"scenario"`
	Image     Artifact  `json:"image"`
	Target    Target    `json:"target"`
	After     string    `json:"after"` // AfterReboot, AfterPoweroff, ...
	// Flash options the line wants (the agent has safe defaults for each).
	Flash FlashOptions `json:"flash,omitempty"`

	// Bmap, when set, is the image's bmaptool block map (.bmap), trusted through its hash:
	// the agent writes only its mapped ranges and checks each range's SHA-256 in place of
	// Image.SHA256. Agents that do not know it ignore it and flash the whole image.
	Bmap *Artifact `json:"bmap,omitempty"`
	// InventorySHA256 is InventoryHash of the inventory in the hello this job answers: the
	// job (rule, image, target, after-action) was chosen for that hardware, and the agent
	// refuses it when its own inventory hashes differently (a relayed hello with another
	// module list).
	InventorySHA256 string `json:"inventory_sha256,omitempty"`
	// Swarm, when set, offers the image over BitTorrent as well as at Image.URL, which is
	// the torrent's web seed and the agent's fallback. Agents that do not know it ignore it
	// and download over plain HTTP.
	Swarm *Swarm `json:"swarm,omitempty"`
}

// Swarm offers a job's image in the line's BitTorrent swarm. The torrent is of the file
// served at Job.Image.URL (the compressed image as stored); Job.Image.SHA256 still decides
// whether the flash is good.
type Swarm struct {
	// Torrent is the URL of the image's metainfo (the server's /images/<file>.torrent).
	Torrent string `json:"torrent"`
	// InfoHash is the torrent's BitTorrent v1 infohash in hex. It is signed with the job,
	// so the agent refuses a metainfo that hashes otherwise.
	InfoHash string `json:"info_hash"`
	// LingerSeconds is how long the agent keeps seeding after it has flashed and verified
	// the image, cut short when no peer wants anything; 0 means the agent's default (60 s),
	// negative means no linger.
	LingerSeconds int `json:"linger_seconds,omitempty"`
}

// Identity names the device a job was issued to; the agent refuses a job for another device.
type Identity struct {
	Serial string `json:"serial"`
	MAC    string `json:"mac"`
}

// Artifact is a file the agent downloads, trusted through its hash.
type Artifact struct {
	Name   string `json:"name,omitempty"`
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`         // of the content (for images: of the decompressed image)
	Size   int64  `json:"size,omitempty"` // for images: decompressed size in bytes
}

// Target chooses the disk to flash: an explicit device path, or the first disk matching the rule.
type Target struct {
	Device    string `json:"device,omitempty"`    // e.g. /dev/vda
	Transport string `json:"transport,omitempty"` // virtio, nvme, sata, mmc, usb
	MinSize   int64  `json:"min_size,omitempty"`
}

// FlashOptions are the line's choices for the flash step.
type FlashOptions struct {
	VerifyReadback    bool `json:"verify_readback,omitempty"`
	GrowLastPartition bool `json:"grow_last_partition,omitempty"`
	// WhileTesting: write the image while the scenario runs, commit it only when every step
	// passed (agents that predate it flash after the scenario, as without it).
	WhileTesting bool `json:"while_testing,omitempty"`
}

// After-actions.
const (
	AfterReboot   = "reboot"
	AfterPoweroff = "poweroff"
	AfterKexec    = "kexec"
	AfterHalt     = "halt"
	AfterNone     = "none"
)

// Status of a step or a run.
type Status string

// Statuses.
const (
	StatusRunning Status = "running"
	StatusPass    Status = "pass"
	StatusFail    Status = "fail"
	StatusSkipped Status = "skipped"
	StatusError   Status = "error" // the agent could not run the step or the run (not a device fault)
)

// Measurement is one value a step measured, recorded whether the step passed or failed.
type Measurement struct {
	Name  string   `json:"name"`            // signal_dbm, csq, link_mbps, size_bytes, mbit_s ...
	Value *float64 `json:"value,omitempty"` // numeric measurements
	Text  string   `json:"text,omitempty"`  // textual ones (IMEI, model, address)
	Unit  string   `json:"unit,omitempty"`
}

// Event kinds.
const (
	EventPhase    = "phase"    // a journey phase started or ended (Phase, Status)
	EventStep     = "step"     // a scenario step started or ended (Step, Status, Measurements)
	EventProgress = "progress" // flash progress (Done, Total)
	EventLog      = "log"      // a console line worth keeping
	EventPrompt   = "prompt"   // the device waits for the operator (Message)
)

// Event is one thing that happened on the device, in order (Seq starts at 1 per run).
type Event struct {
	Seq          int64         `json:"seq"`
	Time         time.Time     `json:"time"`
	Kind         string        `json:"kind"`
	Phase        string        `json:"phase,omitempty"`
	Step         string        `json:"step,omitempty"`
	Status       Status        `json:"status,omitempty"`
	Message      string        `json:"message,omitempty"`
	Done         int64         `json:"done,omitempty"`
	Total        int64         `json:"total,omitempty"`
	Measurements []Measurement `json:"measurements,omitempty"`
}

// EventBatch is a batch of events of one run. Events already acknowledged may be sent again;
// the server keeps each Seq once.
type EventBatch struct {
	RunID  string  `json:"run_id"`
	Serial string  `json:"serial"`
	Events []Event `json:"events"`
	// Secret is the run's HelloResponse.RunSecret; clients send it as the Authorization
	// header, never in the body.
	Secret string `json:"-"`
}

// EventAck acknowledges every event up to and including Seq.
type EventAck struct {
	Seq int64 `json:"seq"`
}

// StepResult is the outcome of one scenario step.
type StepResult struct {
	Name         string        `json:"name"`
	Check        string        `json:"check"` // check kind, e.g. wifi.scan
	Status       Status        `json:"status"`
	Message      string        `json:"message,omitempty"` // one-line reason on failure
	Attempts     int           `json:"attempts"`
	Started      time.Time     `json:"started"`
	DurationMS   int64         `json:"duration_ms"`
	Measurements []Measurement `json:"measurements,omitempty"`
}

// PhaseTiming is how long one phase of the journey took (dhcp, tftp, kernel, agent_start,
// inventory, scenario, step:<name>, flash, reboot ...).
type PhaseTiming struct {
	Phase      string `json:"phase"`
	DurationMS int64  `json:"duration_ms"`
}

// FlashResult describes a completed (or failed) flash.
type FlashResult struct {
	Target     string `json:"target"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256,omitempty"`
	Format     string `json:"format,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Resumes    int    `json:"resumes,omitempty"`
}

// Result is the final, idempotent outcome of a run: the server stores it once per RunID and
// acknowledges repeats without storing them again.
type Result struct {
	RunID      string        `json:"run_id"`
	Serial     string        `json:"serial"`
	MAC        string        `json:"mac"`
	Status     Status        `json:"status"` // pass only when every step passed and the flash verified
	FailedStep string        `json:"failed_step,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	Steps      []StepResult  `json:"steps"`
	Flash      *FlashResult  `json:"flash,omitempty"`
	Timings    []PhaseTiming `json:"timings,omitempty"`
	Finished   time.Time     `json:"finished"`
	// Secret is the run's HelloResponse.RunSecret; clients send it as the Authorization
	// header, never in the body (which the server stores and exports).
	Secret string `json:"-"`
}

// ResultAck acknowledges a stored result. Duplicate is true when it had been stored before.
type ResultAck struct {
	Stored    bool `json:"stored"`
	Duplicate bool `json:"duplicate,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
