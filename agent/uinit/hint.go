package uinit

import (
	"errors"
	"syscall"

	"github.com/flashline/flashline/agent/netup"
	"github.com/flashline/flashline/protocol"
)

// Hint tells the operator what to check for the usual failures, found by what is in err's
// chain rather than by its wording, which is free to change.
func Hint(err error) string {
	var p *PanicError
	switch {
	case errors.As(err, &p):
		return "hint: this is a bug in the agent; boot with flashline.debug for a shell, report the lines above"
	case errors.Is(err, protocol.ErrServerURL):
		return "hint: flashline.server= must be http(s)://host[:port]"
	case errors.Is(err, netup.ErrNoNetwork), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ENETDOWN):
		return "hint: check the cable and the line's DHCP server"
	}
	return "hint: boot with flashline.debug on the kernel command line for an operator shell"
}
