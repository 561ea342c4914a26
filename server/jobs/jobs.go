// Package jobs decides what each device gets: the first configured rule whose match fits the
// device's inventory (DMI product and serial globs, boot MAC, present modules) names a
// scenario and an image, and the package builds the device's job from them: run id, the
// agent's nonce, the device's serial and MAC, the scenario's and image's URLs with their
// SHA-256 (and the image's decompressed size), target, after-action; then signs it.
package jobs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

// ErrNoRule is returned by Issue when no rule matches the device.
var ErrNoRule = errors.New("no rule matches this device")

// Issuer builds and signs jobs. It is safe for concurrent use.
type Issuer struct {
	rules        []config.Rule
	images       map[string]Image
	scenariosDir string
	imagesURL    string
	scenariosURL string
	ttl          time.Duration
	key          ed25519.PrivateKey
	now          func() time.Time
	swarm        SwarmOffers

	mu        sync.Mutex
	scenarios map[string]scenarioSum // file -> hash, revalidated by size and mtime
}

type scenarioSum struct {
	size  int64
	mtime time.Time
	sum   string
}

// Options configures an Issuer.
type Options struct {
	Rules        []config.Rule
	Images       map[string]Image // from LoadImages
	ScenariosDir string
	// ImagesURL and ScenariosURL are the base URLs put into jobs; empty means this server's
	// own /images/ and /scenarios/ (relative URLs, resolved by the agent).
	ImagesURL    string
	ScenariosURL string
	TTL          time.Duration
	// Key signs jobs; nil issues unsigned jobs (development agents only).
	Key ed25519.PrivateKey
	Now func() time.Time // for tests; nil means time.Now
	// Swarm, when set, offers images in the line's BitTorrent swarm (server/swarm); a job
	// whose image it offers carries Job.Swarm.
	Swarm SwarmOffers
}

// SwarmOffers says whether an image file is offered in the swarm, and how.
type SwarmOffers interface {
	Offer(file string) (protocol.Swarm, bool)
}

// New checks that every rule's image is known and returns an Issuer.
func New(o Options) (*Issuer, error) {
	for _, r := range o.Rules {
		if _, ok := o.Images[r.Image]; !ok {
			return nil, fmt.Errorf("rule %q: image %q is not loaded", r.Name, r.Image)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TTL <= 0 {
		o.TTL = config.DefaultTTL
	}
	return &Issuer{rules: o.Rules, images: o.Images, scenariosDir: o.ScenariosDir, imagesURL: o.ImagesURL,
		scenariosURL: o.ScenariosURL, ttl: o.TTL, key: o.Key, now: o.Now, swarm: o.Swarm, scenarios: map[string]scenarioSum{}}, nil
}

// Signed reports whether jobs are signed.
func (is *Issuer) Signed() bool { return is.key != nil }

// Match returns the first rule matching the device, or false.
func (is *Issuer) Match(inv protocol.Inventory, mac string) (config.Rule, bool) {
	for _, r := range is.rules {
		if Matches(r.Match, inv, mac) {
			return r, true
		}
	}
	return config.Rule{}, false
}

// Matches reports whether m fits the device. Globs use path.Match; MACs compare in lower case.
func Matches(m config.Match, inv protocol.Inventory, mac string) bool {
	if m.Product != "" && !glob(m.Product, inv.DMI.Product) {
		return false
	}
	if m.Serial != "" && !glob(m.Serial, inv.DMI.Serial) {
		return false
	}
	if len(m.MACs) > 0 && !slices.ContainsFunc(m.MACs, func(p string) bool { return glob(strings.ToLower(p), strings.ToLower(mac)) }) {
		return false
	}
	for _, mod := range m.Modules {
		want := !strings.HasPrefix(mod, "!")
		if slices.Contains(inv.Modules, strings.TrimPrefix(mod, "!")) != want {
			return false
		}
	}
	return true
}

func glob(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// Issued is a job ready to send, with what the server records about it.
type Issued struct {
	Job    protocol.Job
	Signed protocol.SignedJob
	Rule   string
}

// Issue builds and signs the job for the device that sent h. The caller has validated h's MAC.
func (is *Issuer) Issue(ctx context.Context, h protocol.Hello, mac string) (Issued, error) {
	rule, ok := is.Match(h.Inventory, mac)
	if !ok {
		return Issued{}, fmt.Errorf("%w (product %q, serial %q, MAC %s, modules %v)", ErrNoRule,
			h.Inventory.DMI.Product, h.Inventory.DMI.Serial, mac, h.Inventory.Modules)
	}
	im := is.images[rule.Image]
	scen, err := is.scenario(rule.Scenario)
	if err != nil {
		return Issued{}, fmt.Errorf("rule %q: %w", rule.Name, err)
	}
	invHash, err := protocol.InventoryHash(h.Inventory)
	if err != nil {
		return Issued{}, err
	}
	now := is.now().UTC()
	runID, err := NewRunID(now)
	if err != nil {
		return Issued{}, err
	}
	job := protocol.Job{
		RunID:     runID,
		Nonce:     h.Nonce,
		IssuedAt:  now,
		ExpiresAt: now.Add(is.ttl),
		Device:    protocol.Identity{Serial: h.Inventory.DMI.Serial, MAC: mac},
		Scenario:  protocol.Artifact{Name: rule.Scenario, URL: joinURL(is.scenariosURL, "/scenarios/", rule.Scenario), SHA256: scen.sum, Size: scen.size},
		Image:     protocol.Artifact{Name: im.Name, URL: joinURL(is.imagesURL, "/images/", im.File), SHA256: im.SHA256, Size: im.Size},
		Target:    protocol.Target{Device: rule.Target.Device, Transport: rule.Target.Transport, MinSize: int64(rule.Target.MinSize)},
		After:     rule.After,
		Flash:     protocol.FlashOptions{VerifyReadback: rule.Flash.VerifyReadback, GrowLastPartition: rule.Flash.GrowLastPartition, WhileTesting: rule.Flash.WhileTesting},
		// The rule was chosen for this inventory; binding its hash stops a relay from getting
		// another rule's job with this device's identity and nonce.
		InventorySHA256: invHash,
	}
	if b := im.Bmap; b != nil {
		job.Bmap = &protocol.Artifact{Name: b.File, URL: joinURL(is.imagesURL, "/images/", b.File), SHA256: b.SHA256, Size: b.Size}
	}
	if is.swarm != nil {
		if sw, ok := is.swarm.Offer(im.File); ok {
			job.Swarm = &sw
		}
	}
	sj, err := protocol.SignJob(job, is.key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Job: job, Signed: sj, Rule: rule.Name}, nil
}

// joinURL puts a file's path (escaped element by element) under base, or under def (a path on
// this server) when base is empty.
func joinURL(base, def, file string) string {
	els := strings.Split(file, "/")
	for i, e := range els {
		els[i] = url.PathEscape(e)
	}
	p := strings.Join(els, "/")
	if base == "" {
		return def + p
	}
	return strings.TrimRight(base, "/") + "/" + p
}

// scenario returns the SHA-256 and size of a scenario file, rehashing it when it changed on
// disk.
func (is *Issuer) scenario(file string) (scenarioSum, error) {
	if err := config.CheckRelPath(file); err != nil {
		return scenarioSum{}, fmt.Errorf("scenario: %w", err)
	}
	root, err := os.OpenRoot(is.scenariosDir)
	if err != nil {
		return scenarioSum{}, fmt.Errorf("scenarios directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(file))
	if err != nil {
		return scenarioSum{}, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return scenarioSum{}, fmt.Errorf("scenario: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return scenarioSum{}, fmt.Errorf("scenario %s is not a regular file", file)
	}
	is.mu.Lock()
	c, ok := is.scenarios[file]
	is.mu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c, nil
	}
	if fi.Size() > MaxScenarioBytes {
		return scenarioSum{}, fmt.Errorf("scenario %s is %d bytes; agents accept at most %d", file, fi.Size(), MaxScenarioBytes)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, MaxScenarioBytes+1))
	if err != nil {
		return scenarioSum{}, fmt.Errorf("scenario %s: %w", file, err)
	}
	c = scenarioSum{size: n, mtime: fi.ModTime(), sum: hex.EncodeToString(h.Sum(nil))}
	if n != fi.Size() {
		return scenarioSum{}, fmt.Errorf("scenario %s changed while it was read", file)
	}
	is.mu.Lock()
	is.scenarios[file] = c
	is.mu.Unlock()
	return c, nil
}

// MaxScenarioBytes is the largest scenario file agents download (agent/journey's limit).
const MaxScenarioBytes = 1 << 20

// CheckScenarios verifies that every rule's scenario file can be read, so a typo is found at
// startup and not when the first device asks.
func (is *Issuer) CheckScenarios() error {
	var errs []error
	for _, r := range is.rules {
		if _, err := is.scenario(r.Scenario); err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", r.Name, err))
		}
	}
	return errors.Join(errs...)
}

// NewRunID returns a unique run id that sorts by issue time: 20261125T061500Z-<128 random
// bits>. 128 bits (not 64) because lines sharing one plant database draw ids independently:
// the chance that two of them ever collide is then negligible for any plant's lifetime.
func NewRunID(t time.Time) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}
