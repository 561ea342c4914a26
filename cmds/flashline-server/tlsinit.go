package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/flashline/flashline/server/keys"
)

// cmdTLSInit creates the line's CA (unless the directory has one) and a server certificate.
func cmdTLSInit(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("tls-init", flag.ContinueOnError)
	out := fs.String("out", "", "directory for ca.pem, ca.key, server.pem, server.key; created 0700 if missing")
	hosts := fs.String("hosts", strings.Join(keys.DefaultHosts(), ","), "comma-separated DNS names and IP addresses agents use to reach this server")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flashline-server tls-init -out DIR [-hosts NAME,IP,...]\n\nCreates a CA for the line (if DIR has none) and a server certificate it signs.\nBuild agents that pin the CA with: make CA=DIR/ca.pem")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "flashline-server tls-init: -out DIR is required (and takes no arguments)")
		fs.Usage()
		return 2
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	f, err := keys.InitTLS(*out, hs, time.Now())
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server tls-init: %v\n", err)
		return 1
	}
	if f.NewCA {
		fmt.Printf("new CA:      %s (key %s, mode 0600)\n", f.CACert, f.CAKey)
	} else {
		fmt.Printf("existing CA: %s issued the new certificate\n", f.CACert)
	}
	fmt.Printf("server cert: %s for %s\n", f.ServerCert, strings.Join(f.Hosts, ", "))
	fmt.Printf("server key:  %s (mode 0600)\n", f.ServerKey)
	fmt.Printf("next: build agents that pin this CA with: make CA=%s\n", f.CACert)
	fmt.Printf("      and use https://<one of the hosts above> as flashline.server\n")
	return 0
}
