package bluetooth

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Socket is the kernel's Bluetooth management socket.
type Socket struct {
	*os.File
}

// Dial opens the management socket (AF_BLUETOOTH, BTPROTO_HCI, control
// channel). It needs CAP_NET_ADMIN and the bluetooth module.
func Dial() (*Socket, error) {
	fd, err := unix.Socket(unix.AF_BLUETOOTH, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.BTPROTO_HCI)
	if err != nil {
		return nil, fmt.Errorf("open Bluetooth management socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrHCI{Dev: NoIndex, Channel: unix.HCI_CHANNEL_CONTROL}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind Bluetooth management socket: %w", err)
	}
	// A non-blocking descriptor lets the runtime poller honour read deadlines.
	return &Socket{File: os.NewFile(uintptr(fd), "bluetooth-mgmt")}, nil
}
