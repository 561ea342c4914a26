package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/flashline/flashline/agent/bootstrap"
	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/journey/machine"
	"github.com/flashline/flashline/agent/uinit"
)

// cmdRun is the whole journey: boot (command line, mounts, modules, DHCP), then the line
// server's job. As the initramfs' uinit it never returns (agent/uinit says why and how).
func cmdRun(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	server := fs.String("server", "", "line server base URL, e.g. http://10.0.2.2:8080 (overrides flashline.server= on the kernel command line)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flashline-agent run [--server URL]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "flashline-agent run: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	con := console.New(os.Stdout)
	role := uinit.RoleOf(os.Getenv)
	if role == uinit.Supervisor {
		return uinit.Supervise(con, "/proc/self/exe", args)
	}
	return uinit.Run(ctx, uinit.Options{
		Console: con,
		Owner:   role == uinit.Child,
		Once: func(ctx context.Context) (bool, error) {
			env, err := bootstrap.Boot(ctx, bootstrap.Options{Server: *server, Console: con})
			debug := env != nil && env.Params.Debug
			if err != nil {
				return debug, err
			}
			return debug, machine.Run(ctx, env)
		},
	})
}
