package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/flashline/flashline/server/keys"
)

// cmdKeygen creates the line operator's job-signing keypair.
func cmdKeygen(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "directory for operator.key (0600) and operator.pub; created 0700 if missing")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flashline-server keygen -out DIR\n\nCreates the ed25519 keypair that signs jobs. The private key never leaves this host;\nbuild agents with the public key: make PUBKEY=DIR/operator.pub")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "flashline-server keygen: -out DIR is required (and takes no arguments)")
		fs.Usage()
		return 2
	}
	kp, err := keys.Generate(*out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server keygen: %v\n", err)
		return 1
	}
	fmt.Printf("private key: %s (mode 0600; keep it on this host only)\n", kp.Private)
	fmt.Printf("public key:  %s (key id %s)\n", kp.Public, kp.KeyID)
	fmt.Printf("next: build agents that obey only this key with: make PUBKEY=%s\n", kp.Public)
	fmt.Printf("      and give the server the private key path in its configuration\n")
	return 0
}
