package operator

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ColorAuto reports whether output to w gets ANSI colour: never when NO_COLOR is set to
// anything (https://no-color.org), never when w is not a terminal (a file, a pipe, a log
// collector), otherwise as ColorFor says for TERM. getenv is os.Getenv outside tests.
func ColorAuto(w io.Writer, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" {
		return false
	}
	if !isTerminal(w) {
		return false
	}
	return ColorFor(getenv("TERM"))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
