package uinit

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/flashline/flashline/agent/bootstrap"
	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/sysinit"
)

// SupervisedEnv marks the agent process a supervisor started.
const SupervisedEnv = "FLASHLINE_SUPERVISED"

// Role is what this agent process is on the machine.
type Role int

const (
	// Host: flashline-agent run on a development host; failures end the process.
	Host Role = iota
	// Supervisor: the uinit itself; it only runs and restarts the journey's child.
	Supervisor
	// Child: the journey process the supervisor started; it owns the device.
	Child
)

// RoleOf says what this process is: started by u-root's init in the initramfs (or being
// init), there is nobody to return to.
func RoleOf(getenv func(string) string) Role {
	uinit := os.Getpid() == 1 || os.Getppid() == 1 && sysinit.InInitramfs()
	switch {
	case uinit && getenv(SupervisedEnv) == "":
		return Supervisor
	case uinit || getenv(SupervisedEnv) != "":
		return Child
	}
	return Host
}

// Supervise runs `self run args...` in a child process and starts it again whenever it dies:
// a panic on any goroutine (which recover cannot catch) ends only the child, never the uinit.
// It does not return while the machine runs.
func Supervise(con *console.Console, self string, args []string) int {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	s := bootstrap.Supervisor{
		Run: func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, self, append([]string{"run"}, args...)...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			cmd.Env = append(os.Environ(), SupervisedEnv+"=1")
			return cmd.Run()
		},
		Backoff: &lineclient.Backoff{Min: 5 * time.Second, Max: time.Minute},
		Console: con,
	}
	_ = s.Loop(context.Background())
	return 1
}
