// Command flashline-server is Flashline's reference line server: DHCP (proxy or full), TFTP
// with per-device pxelinux.cfg, the agents' HTTP API, images and scenarios, the operator
// dashboard and Prometheus metrics, and the results database, all from one YAML file with
// every part switchable off. See docs/server.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

var subcommands = map[string]func(ctx context.Context, args []string) int{
	"version":  cmdVersion,
	"serve":    cmdServe,
	"check":    cmdCheck,
	"init":     cmdInit,
	"export":   cmdExport,
	"reset":    cmdReset,
	"keygen":   cmdKeygen,
	"tls-init": cmdTLSInit,
	"passwd":   cmdPasswd,
	"audit":    cmdAudit,
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: flashline-server [serve|check|init|export|reset|audit|passwd|keygen|tls-init|version] ...

  [serve] -config FILE                        run the line server (the default subcommand)
  check -config FILE                          every problem in the configuration, FILE:LINE:COL: message
  init [-mode proxy|full] [-kernel F] [-initrd F] [-force]
                                              lay out this line host (TFTP root, key, server.yaml)
  export -serial S [-format json|csv] [-config FILE] [-o FILE]
                                              one device's runs, steps, measurements, timings
  reset -mac M [-actor NAME] [-config FILE]   provision the device again at its next netboot (audit-logged)
  audit [-n 50] [-json] [-config FILE]        who reset which device when
  passwd -name NAME [-token]                  an operator's password hash (or a new token) for server.yaml
  keygen -out DIR                             create the job-signing keypair
  tls-init -out DIR [-hosts NAME,IP,...]      create a line CA and the server's certificate
  version [-json]                             which build this is (also --version)

Run 'flashline-server SUBCOMMAND -h' for a subcommand's flags.
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args[0] = "version"
	}
	// No subcommand, or flags first: serve.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		args = append([]string{"serve"}, args...)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		os.Exit(0)
	}

	cmd, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "flashline-server: unknown subcommand %q\n", args[0])
		usage()
		os.Exit(2)
	}
	os.Exit(cmd(ctx, args[1:]))
}
