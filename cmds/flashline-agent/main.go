// Command flashline-agent is Flashline's on-device agent. In the initramfs it runs as u-root's
// uinit and drives the whole journey (run); on any Linux host its subcommands can be used alone.
// The command line is a contract (see README.md and ../shared/design.md).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flashline/flashline/agent/uinit"
)

// subcommands maps each subcommand to its implementation; each lives in its own file so that
// the mains stay thin wiring of flags to packages.
var subcommands = map[string]func(ctx context.Context, args []string) int{
	"version":   cmdVersion,
	"run":       cmdRun,
	"flash":     cmdFlash,
	"inventory": cmdInventory,
	"scenario":  cmdScenario,
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: flashline-agent [run|flash|inventory|scenario|version] ...

  run [--server URL]                          the whole journey (default when started as uinit)
  flash [--sha256 HEX] [--size BYTES] SOURCE TARGET
                                              write an image (URL, file or -) to a device or file
  inventory                                   print the hardware inventory as JSON
  scenario lint FILE...                       check scenario files
  scenario run FILE                           run a scenario here and print the results
  version [-json]                             which build this is (also --version)

Run 'flashline-agent SUBCOMMAND -h' for a subcommand's flags.
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	// As the initramfs' uinit the agent is started with no arguments: that means "run".
	if len(args) == 0 {
		args = []string{"run"}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		os.Exit(0)
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	cmd, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "flashline-agent: unknown subcommand %q\n", args[0])
		usage()
		os.Exit(2)
	}
	code := cmd(ctx, args[1:])
	// A subcommand that u-root's init started as its uinit must not exit (see uinit.Linger).
	os.Exit(uinit.Linger(os.Stdout, uinit.StartedByURootInit(os.Args[0], os.Getppid()), code, nil))
}
