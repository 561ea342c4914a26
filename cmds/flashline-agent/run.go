package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/flashline/flashline/agent/bootstrap"
	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/kmod"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/power"
	"github.com/flashline/flashline/agent/rescue"
	"github.com/flashline/flashline/agent/sysinit"
	"github.com/flashline/flashline/protocol"
)

// cmdRun is the whole journey: boot (command line, mounts, modules, DHCP), then the line
// server's job. As the initramfs' uinit it never returns: u-root's init would power off or
// drop to a shell, leaving the operator a dead screen, so every failure is printed with a
// hint and retried (after an operator shell when flashline.debug is set).
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
	// Started by u-root's init in the initramfs (or being init): there is nobody to return to.
	uinit := os.Getpid() == 1 || os.Getppid() == 1 && sysinit.InInitramfs()
	if uinit && os.Getenv(supervisedEnv) == "" {
		return supervise(con, args)
	}
	owner := uinit || os.Getenv(supervisedEnv) != ""
	if owner {
		// Signals must not end the device's only program.
		ctx = context.WithoutCancel(ctx)
	}
	retry := &lineclient.Backoff{Min: 5 * time.Second, Max: time.Minute}
	for {
		env, err := runOnce(ctx, con, *server)
		if err == nil {
			if owner {
				// The journey ended without resetting the machine (after-action "none"):
				// exiting would make u-root's init panic the kernel, so stay with the final
				// screen on.
				con.Infof("journey finished: the device can be switched off")
				for {
					time.Sleep(time.Hour)
				}
			}
			return 0
		}
		if !owner && ctx.Err() != nil {
			con.Failf("stopped: %v", err)
			return 1
		}
		con.Banner(console.Fail, "flashline-agent could not go on:", firstLine(err.Error()), hint(err))
		if rest := moreLines(err.Error()); rest != "" {
			con.Failf("%s", rest)
		}
		if !owner {
			return 1
		}
		if env != nil && env.Params.Debug {
			operatorShell(ctx, con)
		}
		wait := retry.Next()
		con.Infof("starting over in %s", wait.Round(time.Second))
		_ = lineclient.Sleep(ctx, wait)
	}
}

// supervisedEnv marks the agent process a supervisor started.
const supervisedEnv = "FLASHLINE_SUPERVISED"

// supervise runs the journey in a child process and starts it again whenever it dies: a panic
// on any goroutine (which recover cannot catch) ends only the child, never the uinit.
func supervise(con *console.Console, args []string) int {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	s := bootstrap.Supervisor{
		Run: func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, "/proc/self/exe", append([]string{"run"}, args...)...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			cmd.Env = append(os.Environ(), supervisedEnv+"=1")
			return cmd.Run()
		},
		Backoff: &lineclient.Backoff{Min: 5 * time.Second, Max: time.Minute},
		Console: con,
	}
	_ = s.Loop(context.Background())
	return 1
}

// runOnce boots and runs the journey once. A panic anywhere on this goroutine becomes an
// error so that the caller can show it and start over.
func runOnce(ctx context.Context, con *console.Console, server string) (env *bootstrap.Env, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v\n%s", r, debug.Stack())
		}
	}()
	env, err = bootstrap.Boot(ctx, bootstrap.Options{Server: server, Console: con})
	if err != nil {
		return env, err
	}
	return env, runJourney(ctx, env)
}

// hint tells the operator what to check for the usual failures.
func hint(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "internal error"):
		return "hint: this is a bug in the agent; boot with flashline.debug for a shell, report the lines above"
	case strings.Contains(s, "--server"), strings.Contains(s, "line server URL"):
		return "hint: flashline.server= must be http(s)://host[:port]"
	case strings.Contains(s, "network"):
		return "hint: check the cable and the line's DHCP server"
	}
	return "hint: boot with flashline.debug on the kernel command line for an operator shell"
}

// operatorShell runs a shell on the console for the operator (flashline.debug), or the
// rescue console when the image has no shell; the journey starts over when it exits.
func operatorShell(ctx context.Context, con *console.Console) {
	for _, sh := range []string{"/bin/defaultsh", "/bin/sh", "/bbin/gosh", "/bin/gosh"} {
		if _, err := os.Stat(sh); err != nil {
			continue
		}
		con.Infof("flashline.debug: shell %s on the console; exit it to start over", sh)
		cmd := exec.Command(sh)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			con.Warnf("shell: %v", err)
		}
		return
	}
	con.Infof("flashline.debug: rescue console; 'retry' starts over")
	act := rescue.Run(ctx, rescue.Env{Root: "/", Load: kmod.Load, Kmsg: rescue.Kmsg, Links: rescue.Links}, os.Stdin, os.Stdout)
	switch act {
	case rescue.Reboot:
		con.Infof("rebooting")
		if err := power.Do(ctx, power.Kernel{}, protocol.AfterReboot); err != nil {
			con.Failf("reboot: %v", err)
		}
	case rescue.Poweroff:
		con.Infof("powering off")
		if err := power.Do(ctx, power.Kernel{}, protocol.AfterPoweroff); err != nil {
			con.Failf("poweroff: %v", err)
		}
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func moreLines(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}
