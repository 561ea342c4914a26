package bootstrap

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/bootstrap/internal/discover"
	"github.com/flashline/flashline/agent/cmdline"
	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/netup"
)

// discoverServer looks for the line server when the command line names none, as on a device
// booted from a discovery stick (docs/boot-media.md): by the methods in flashline.discover,
// DHCP and mDNS by default. It returns "" when nothing answers.
func discoverServer(ctx context.Context, con *console.Console, p cmdline.Params, res *netup.Result) string {
	spec, _ := p.Flag(discover.Param)
	methods, err := discover.ParseSpec(spec)
	if err != nil {
		con.Warnf("%v; using %s", err, discover.DefaultSpec)
		methods, _ = discover.ParseSpec("")
	}
	f := discover.Finder{
		Lease: discover.Lease{NextServer: res.Lease.NextServer, BootFile: res.Lease.BootFile,
			TFTPServer: res.Lease.TFTPServer, ServerID: res.Lease.ServerID},
		Logf: con.Infof,
	}
	if ifc, err := net.InterfaceByName(res.Link.Name); err == nil {
		f.MDNS = &discover.MDNSResolver{Iface: ifc}
	}
	names := make([]string, len(methods))
	for i, m := range methods {
		names[i] = m.String()
	}
	con.Infof("no flashline.server= on the kernel command line: discovering it (%s)", strings.Join(names, ","))
	u, err := f.Find(ctx, methods)
	if err != nil {
		con.Warnf("%v", err)
		return ""
	}
	return u
}

// waitForServer calls find until it names a server, telling the operator on the console what
// is missing and when it looks again. It returns an error only when ctx ends.
func waitForServer(ctx context.Context, con *console.Console, b interface{ Next() time.Duration }, find func(context.Context) string) (string, error) {
	for attempt := 1; ; attempt++ {
		if u := find(ctx); u != "" {
			return u, nil
		}
		d := b.Next()
		con.Warnf("NO LINE SERVER FOUND (attempt %d): the kernel command line has no flashline.server=URL, "+
			"the DHCP answer names no boot server, and no discovery method answered (%s=%s). "+
			"Check that the line server runs and is reachable; looking again in %s", attempt, discover.Param, discover.DefaultSpec, d.Round(time.Second))
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(d):
		}
	}
}
