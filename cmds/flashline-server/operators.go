package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/operatorauth"
)

// operatorGuard builds the dashboard's operator guard from the configuration.
func operatorGuard(cfg *config.Config, log *slog.Logger) (*operatorauth.Guard, error) {
	g, err := operatorauth.New(operatorauth.Options{Operators: cfg.Operators, PublicURL: cfg.HTTP.PublicURL,
		Logger: log.With("component", "operators")})
	if err != nil {
		return nil, fmt.Errorf("operators: %w", err)
	}
	o := cfg.Operators
	if !g.Configured() {
		log.Warn("no operators configured: the dashboard cannot reset devices (use flashline-server reset on this host, or add operators: to the config)")
	}
	log.Info("operators", "tokens", len(o.Tokens), "users", len(o.Users), "client_cert_cns", len(o.ClientCertCNs),
		"read_only_open", config.On(o.ReadOnlyOpen), "allowed_hosts", o.AllowedHosts)
	return g, nil
}

// cmdPasswd prints the configuration lines for a new operator: a user's bcrypt password hash
// (the password read from the terminal without echo, or from stdin), or with -token a new
// random token (shown once) and its SHA-256.
func cmdPasswd(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	name := fs.String("name", "", "the operator's name (user login, or whose token it is)")
	token := fs.Bool("token", false, "make a bearer token instead of a password hash")
	cost := fs.Int("cost", 12, fmt.Sprintf("bcrypt cost (%d to %d)", config.MinBcryptCost, bcrypt.MaxCost))
	if code, done := parseFlags(fs, args); done {
		return code
	}
	const passwdUsage = "usage: flashline-server passwd -name NAME [-token] [-cost N]   (the password on stdin or typed)"
	switch {
	case !config.ValidOperatorName(*name):
		fmt.Fprintf(os.Stderr, "flashline-server passwd: -name %q: want 1 to 64 letters, digits, '.', '_', '-' or '@'\n%s\n", *name, passwdUsage)
		return 2
	case fs.NArg() != 0:
		fmt.Fprintf(os.Stderr, "flashline-server passwd: unexpected argument %q (the password is never an argument: it would be in the shell history)\n%s\n", fs.Arg(0), passwdUsage)
		return 2
	case *cost < config.MinBcryptCost || *cost > bcrypt.MaxCost:
		fmt.Fprintf(os.Stderr, "flashline-server passwd: -cost %d: want %d to %d\n", *cost, config.MinBcryptCost, bcrypt.MaxCost)
		return 2
	}
	if *token {
		b := make([]byte, 32)
		rand.Read(b)
		tok := base64.RawURLEncoding.EncodeToString(b)
		sum := sha256.Sum256([]byte(tok))
		fmt.Fprintf(os.Stderr, "token for %s (shown once; send it as Authorization: Bearer TOKEN):\n", *name)
		fmt.Fprintln(os.Stderr, tok)
		fmt.Fprintln(os.Stderr, "add under operators.tokens in server.yaml:")
		fmt.Printf("  - {name: %s, sha256: %s}\n", *name, hex.EncodeToString(sum[:]))
		return 0
	}
	pw, err := readPassword(os.Stdin, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server passwd: %v\n", err)
		return 1
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server passwd: %v\n", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "add under operators.users in server.yaml:")
	fmt.Printf("  - {name: %s, password_hash: '%s'}\n", *name, h)
	return 0
}

// readPassword reads a password: typed twice without echo on a terminal, else the first line
// of in (a script's pipe).
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil { // not a terminal
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("read the password from stdin: %w", err)
		}
		return checkPassword(strings.TrimRight(line, "\r\n"))
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	r := bufio.NewReader(in)
	read := func(p string) (string, error) {
		fmt.Fprint(prompt, p)
		line, err := r.ReadString('\n')
		fmt.Fprintln(prompt)
		return strings.TrimRight(line, "\r\n"), err
	}
	a, err := read("password: ")
	if err != nil {
		return "", err
	}
	b, err := read("again: ")
	if err != nil {
		return "", err
	}
	if a != b {
		return "", errors.New("the passwords differ")
	}
	return checkPassword(a)
}

func checkPassword(pw string) (string, error) {
	switch {
	case len(pw) < 8:
		return "", errors.New("password: at least 8 characters")
	case len(pw) > 72:
		return "", errors.New("password: at most 72 bytes (bcrypt's limit)")
	}
	return pw, nil
}

// cliActor is who a reset from the command line is recorded as: -actor, else the local
// user (behind sudo, the user who ran sudo) on this host.
func cliActor(flagValue string) string {
	if flagValue != "" {
		return "cli:" + flagValue
	}
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		} else {
			name = fmt.Sprint(os.Getuid())
		}
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

// cmdAudit prints the latest operator actions (resets), newest first.
func cmdAudit(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	cfgPath := fs.String("config", DefaultConfig, "server configuration file (for data_dir)")
	dataDir := fs.String("data", "", "data directory (instead of -config)")
	limit := fs.Int("n", 50, "how many entries (1 to 10000)")
	asJSON := fs.Bool("json", false, "JSON lines instead of a table")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 || *limit < 1 || *limit > 10000 {
		fmt.Fprintln(os.Stderr, "usage: flashline-server audit [-n 50] [-json] [-config FILE | -data DIR]")
		return 2
	}
	st, err := openExisting(ctx, *cfgPath, *dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server audit: %v\n", err)
		return 1
	}
	defer st.Close()
	log, err := st.Audit(ctx, *limit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server audit: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		for _, e := range log {
			enc.Encode(e)
		}
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tMAC\tDETAIL")
	for _, e := range log {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Actor, e.Action, e.MAC, e.Detail)
	}
	tw.Flush()
	return 0
}
