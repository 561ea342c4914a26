// Package rescue is the operator's console on a device whose journey could not go on, for
// initramfs images that carry no shell (the production image has none, to stay small): a
// handful of read-only looks at the system (kernel log, modules, NICs, mounts, files) plus
// loading a module, and the way back (retry) or out (reboot, poweroff). It is offered only in
// debug mode (flashline.debug on the kernel command line).
package rescue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Action is what the operator chose when leaving the console.
type Action int

// Ways out.
const (
	Retry Action = iota
	Reboot
	Poweroff
)

// Env is what the commands act on; the fields are functions so that tests run without a device.
type Env struct {
	// Root prefixes the paths of ls, cat, /proc and /sys ("/" on a device).
	Root string
	// Load loads kernel modules (kmod.Load).
	Load func(ctx context.Context, names ...string) error
	// Kmsg returns the kernel log (unix.Klogctl on a device).
	Kmsg func() (string, error)
	// Links describes the network interfaces and their addresses.
	Links func() (string, error)
}

type command struct {
	usage string
	help  string
	run   func(ctx context.Context, env Env, w io.Writer, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"dmesg":    {"dmesg [N]", "last N (default 40) kernel log lines", cmdDmesg},
		"lsmod":    {"lsmod", "loaded kernel modules", cmdLsmod},
		"modprobe": {"modprobe NAME...", "load kernel modules with their dependencies", cmdModprobe},
		"ip":       {"ip", "network interfaces and addresses", cmdIP},
		"mounts": {"mounts", "mounted file systems", func(ctx context.Context, env Env, w io.Writer, _ []string) error {
			return cat(env, w, "/proc/mounts")
		}},
		"cmdline": {"cmdline", "kernel command line", func(ctx context.Context, env Env, w io.Writer, _ []string) error {
			return cat(env, w, "/proc/cmdline")
		}},
		"ls":  {"ls DIR", "list a directory", cmdLs},
		"cat": {"cat FILE", "print a file (first 64 KiB)", cmdCat},
	}
}

// Run reads commands from in until the operator chooses a way out (or in ends: Retry).
func Run(ctx context.Context, env Env, in io.Reader, out io.Writer) Action {
	if env.Root == "" {
		env.Root = "/"
	}
	cmds := commands()
	fmt.Fprintln(out, "flashline rescue console (no shell in this image). Type help.")
	sc := bufio.NewScanner(in)
	for {
		fmt.Fprint(out, "rescue> ")
		if !sc.Scan() {
			fmt.Fprintln(out)
			return Retry
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "retry", "exit", "quit":
			return Retry
		case "reboot":
			return Reboot
		case "poweroff":
			return Poweroff
		case "help", "?":
			help(out, cmds)
			continue
		}
		c, ok := cmds[f[0]]
		if !ok {
			fmt.Fprintf(out, "%s: unknown command; type help\n", f[0])
			continue
		}
		if err := c.run(ctx, env, out, f[1:]); err != nil {
			fmt.Fprintf(out, "%s: %v\n", f[0], err)
		}
	}
}

func help(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", cmds[n].usage, cmds[n].help)
	}
	fmt.Fprintf(w, "  %-18s %s\n  %-18s %s\n  %-18s %s\n", "retry", "leave and start the journey over", "reboot", "reboot the device", "poweroff", "power the device off")
}

func path(env Env, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return strings.TrimSuffix(env.Root, "/") + p
}

func cat(env Env, w io.Writer, p string) error {
	f, err := os.Open(path(env, p))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, io.LimitReader(f, 64<<10))
	return err
}

func cmdCat(ctx context.Context, env Env, w io.Writer, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: cat FILE")
	}
	return cat(env, w, args[0])
}

func cmdLs(ctx context.Context, env Env, w io.Writer, args []string) error {
	dir := "/"
	if len(args) > 0 {
		dir = args[0]
	}
	es, err := os.ReadDir(path(env, dir))
	if err != nil {
		return err
	}
	for _, e := range es {
		suffix := ""
		if e.IsDir() {
			suffix = "/"
		} else if e.Type()&os.ModeSymlink != 0 {
			suffix = "@"
		}
		fmt.Fprintln(w, e.Name()+suffix)
	}
	return nil
}

func cmdLsmod(ctx context.Context, env Env, w io.Writer, _ []string) error {
	b, err := os.ReadFile(path(env, "/proc/modules"))
	if err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 {
			fmt.Fprintf(w, "%-24s %8s  %s\n", f[0], f[1], strings.TrimSuffix(f[3], ","))
		}
	}
	return nil
}

func cmdModprobe(ctx context.Context, env Env, w io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: modprobe NAME...")
	}
	if env.Load == nil {
		return errors.New("module loading not available")
	}
	if err := env.Load(ctx, args...); err != nil {
		return err
	}
	fmt.Fprintf(w, "loaded %s\n", strings.Join(args, " "))
	return nil
}

func cmdDmesg(ctx context.Context, env Env, w io.Writer, args []string) error {
	n := 40
	if len(args) > 0 {
		if _, err := fmt.Sscan(args[0], &n); err != nil || n <= 0 {
			return errors.New("usage: dmesg [N]")
		}
	}
	if env.Kmsg == nil {
		return errors.New("kernel log not available")
	}
	s, err := env.Kmsg()
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
	return nil
}

func cmdIP(ctx context.Context, env Env, w io.Writer, _ []string) error {
	if env.Links == nil {
		return errors.New("network not available")
	}
	s, err := env.Links()
	if err != nil {
		return err
	}
	fmt.Fprint(w, s)
	return nil
}
