package bootstrap

import (
	"context"
	"net"
	"strings"

	"github.com/flashline/flashline/agent/cmdline"
	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/discover"
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
		Lease: discover.Lease{NextServer: res.Lease.NextServer, BootFile: res.Lease.BootFile},
		Logf:  con.Infof,
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
