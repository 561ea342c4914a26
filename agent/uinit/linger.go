package uinit

import (
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// StartedByURootInit reports whether u-root's init started this process as its uinit: init
// runs /bin/uinit (the agent, under that name) as its child. A test's own /init that runs
// /bin/flashline-agent does not count: it waits for the agent and goes on itself.
func StartedByURootInit(arg0 string, ppid int) bool {
	return ppid == 1 && filepath.Base(arg0) == "uinit"
}

// Linger is how a subcommand that ends (scenario run, inventory ...) finishes. Normally it
// returns code for the process to exit with. When u-root's init started the subcommand as
// its uinit (uroot.uinitargs="scenario run FILE", the way the e2e tests and a bench boot a
// device straight into one scenario) it says so on w and calls idle instead (nil: sleep
// forever), because exiting loses the end of the output: u-root's init (v0.16) gives its uinit
// a pipe for stdout and stderr when console= is set and copies that pipe to the consoles in a
// goroutine; when the uinit exits, init neither waits for that copy nor, with no other process
// left, for anything else: it exits and the kernel panics "Attempted to kill init" while the
// last lines written, a scenario's summary banner, are still in the pipe. idle returns only
// in tests; Linger then returns code.
func Linger(w io.Writer, asUinit bool, code int, idle func()) int {
	if !asUinit {
		return code
	}
	if idle == nil {
		idle = func() {
			for {
				time.Sleep(time.Hour)
			}
		}
	}
	// A write error cannot be reported anywhere better than this console.
	_, _ = fmt.Fprintf(w, "flashline-agent: finished with exit status %d; staying up as u-root's uinit (exiting would panic the kernel)\n", code)
	idle()
	return code
}
