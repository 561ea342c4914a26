package kmod

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WaitMMC waits until every MMC/SD host controller under root (/sys/class/mmc_host) has
// enumerated its card and, for a memory card (eMMC, SD), the card has its block device, or
// until timeout. A host controller probes as soon as its module loads, but its card appears
// only after the card's own initialisation, often later than a round of Probe settles; the
// inventory read before that has no eMMC, and the device's flash target is missing from the
// inventory its job is bound to. A host without a card (an empty SD slot) costs the timeout.
// It returns how long it waited and the hosts still without a ready card.
func WaitMMC(ctx context.Context, root string, timeout time.Duration) (time.Duration, []string) {
	start := time.Now()
	for {
		missing := mmcHostsNotReady(root)
		if len(missing) == 0 || time.Since(start) >= timeout {
			return time.Since(start), missing
		}
		select {
		case <-ctx.Done():
			return time.Since(start), missing
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// mmcHostsNotReady lists the hosts of /sys/class/mmc_host without a card, or with a memory
// card that has no block device yet. SDIO cards (Wi-Fi modules) have no block device.
func mmcHostsNotReady(root string) []string {
	class := filepath.Join(root, "sys", "class", "mmc_host")
	hosts, err := os.ReadDir(class)
	if err != nil {
		return nil // no MMC support in this kernel, or no host: nothing to wait for
	}
	var missing []string
	for _, h := range hosts {
		name := h.Name()
		cards, _ := filepath.Glob(filepath.Join(class, name, name+":*"))
		ready := len(cards) > 0
		for _, c := range cards {
			t, _ := os.ReadFile(filepath.Join(c, "type"))
			switch strings.TrimSpace(string(t)) {
			case "MMC", "SD":
				if _, err := os.Stat(filepath.Join(c, "block")); err != nil {
					ready = false
				}
			}
		}
		if !ready {
			missing = append(missing, name)
		}
	}
	return missing
}
