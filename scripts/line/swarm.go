package line

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// ShapeUplink limits what the server sends onto the line to rate bit/s in all, like a line
// server's uplink: a tbf on the interface holding the server's address. With several taps
// that is their bridge, which the server's own packets leave through while guest-to-guest
// traffic is bridged past it, so only the server's share is limited.
func (l *Line) ShapeUplink(ctx context.Context, rate int64) error {
	burst := max(rate/8/500, 64<<10)
	return tc(ctx, "qdisc", "replace", "dev", l.iface, "root", "tbf", "rate", strconv.FormatInt(rate, 10)+"bit",
		"burst", strconv.FormatInt(burst, 10), "latency", "50ms")
}

// CountFromServer starts counting, on tap, the bytes whose source is the server's address
// (HTTP, the seed, TFTP alike): what the guest on that tap takes from the server, as opposed
// to what its peers send it. BytesFromServer reads the count.
func (l *Line) CountFromServer(ctx context.Context, tap string) error {
	// An htb with two unlimited classes, the server's traffic sorted into 1:1 (the kernel
	// here has no prio qdisc; htb and u32 it has).
	steps := [][]string{
		{"qdisc", "replace", "dev", tap, "root", "handle", "1:", "htb", "default", "2", "r2q", "100000"},
		{"class", "add", "dev", tap, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"},
		{"class", "add", "dev", tap, "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit"},
		{"filter", "add", "dev", tap, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
			"match", "ip", "src", l.ip + "/32", "flowid", "1:1"},
	}
	for _, s := range steps {
		if err := tc(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

var fromServerRe = regexp.MustCompile(`class htb 1:1 [^\n]*\n\s*Sent (\d+) bytes`)

// BytesFromServer is what CountFromServer has counted on tap so far.
func (l *Line) BytesFromServer(ctx context.Context, tap string) (int64, error) {
	out, err := exec.CommandContext(ctx, "tc", "-s", "class", "show", "dev", tap).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("line: tc class show dev %s: %v: %s", tap, err, out)
	}
	m := fromServerRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("line: no server class on %s (CountFromServer first): %s", tap, out)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

func tc(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "tc", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("line: tc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
