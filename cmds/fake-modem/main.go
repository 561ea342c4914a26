// Command fake-modem runs testbed/atmodem, a fake AT modem, for QEMU tests and manual
// poking. The guest sees it as /dev/ttyUSB0 when QEMU runs with
//
//	-chardev socket,id=modem,path=/tmp/modem.sock -device qemu-xhci -device usb-serial,chardev=modem
//
// and fake-modem --listen unix:/tmp/modem.sock is started first (or QEMU gets server=on and
// fake-modem --connect). --pty serves on a new pseudo-terminal and prints its path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/flashline/flashline/testbed/atmodem"
	"golang.org/x/sys/unix"
)

func main() {
	def := atmodem.EC25()
	listen := flag.String("listen", "", "serve connections on unix:PATH or tcp:HOST:PORT")
	connect := flag.String("connect", "", "connect to unix:PATH or tcp:HOST:PORT (QEMU chardev with server=on) and serve it, reconnecting")
	usePty := flag.Bool("pty", false, "serve on a new pseudo-terminal; print its path")
	manufacturer := flag.String("manufacturer", def.Manufacturer, "AT+CGMI answer")
	model := flag.String("model", def.Model, "AT+CGMM answer")
	revision := flag.String("revision", def.Revision, "AT+CGMR answer")
	imei := flag.String("imei", def.IMEI, "AT+CGSN answer")
	iccid := flag.String("iccid", def.ICCID, "SIM ICCID")
	imsi := flag.String("imsi", def.IMSI, "SIM IMSI")
	noSIM := flag.Bool("no-sim", false, "no SIM inserted (+CME ERROR: 10)")
	pin := flag.Bool("pin", false, "SIM wants a PIN")
	csq := flag.Int("csq", def.CSQ, "AT+CSQ rssi (0..31, 99 unknown)")
	reg := flag.Int("reg", def.Reg, "registration stat: 0 none, 1 home, 2 searching, 3 denied, 5 roaming")
	noURC := flag.Bool("no-urc", false, "send no unsolicited lines")
	mute := flag.Bool("mute", false, "answer nothing (a dead port)")
	flag.Parse()

	cfg := def
	cfg.Manufacturer, cfg.Model, cfg.Revision, cfg.IMEI, cfg.ICCID, cfg.IMSI = *manufacturer, *model, *revision, *imei, *iccid, *imsi
	cfg.SIMPresent, cfg.PINRequired, cfg.CSQ, cfg.Reg, cfg.Mute = !*noSIM, *pin, *csq, *reg, *mute
	if *noURC {
		cfg.Greeting, cfg.URCs, cfg.URCEvery = nil, nil, 0
	}
	m := atmodem.New(cfg)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case *usePty:
		err = servePty(ctx, m)
	case *listen != "":
		err = serveListen(ctx, m, *listen, log)
	case *connect != "":
		err = serveConnect(ctx, m, *connect, log)
	default:
		fmt.Fprintln(os.Stderr, "fake-modem: give --listen, --connect or --pty")
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "fake-modem: %v\n", err)
		os.Exit(1)
	}
}

func splitAddr(addr string) (network, address string, err error) {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || (network != "unix" && network != "tcp") {
		return "", "", fmt.Errorf("address %q: want unix:PATH or tcp:HOST:PORT", addr)
	}
	return network, address, nil
}

// serveListen serves one connection at a time: a serial line has one other end.
func serveListen(ctx context.Context, m *atmodem.Modem, addr string, log *slog.Logger) error {
	network, address, err := splitAddr(addr)
	if err != nil {
		return err
	}
	if network == "unix" {
		_ = os.Remove(address)
	}
	l, err := net.Listen(network, address)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	log.Info("fake modem listening", "addr", addr)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		log.Info("fake modem: connected", "peer", c.RemoteAddr())
		err = serveConn(ctx, m, c)
		log.Info("fake modem: disconnected", "err", err)
	}
}

func serveConnect(ctx context.Context, m *atmodem.Modem, addr string, log *slog.Logger) error {
	network, address, err := splitAddr(addr)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		log.Info("fake modem: connected", "addr", addr)
		err = serveConn(ctx, m, c)
		log.Info("fake modem: disconnected", "err", err)
	}
	return ctx.Err()
}

func serveConn(ctx context.Context, m *atmodem.Modem, c io.ReadWriteCloser) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-cctx.Done()
		c.Close()
	}()
	return m.Serve(cctx, c)
}

func servePty(ctx context.Context, m *atmodem.Modem) error {
	master, slave, err := pty.Open()
	if err != nil {
		return err
	}
	defer master.Close()
	defer slave.Close() // held open so that the master does not see EIO between clients
	if err := makeRaw(int(slave.Fd())); err != nil {
		return err
	}
	fmt.Println(slave.Name())
	return serveConn(ctx, m, master)
}

// makeRaw turns off the line discipline's echo and CR translation on a pty.
func makeRaw(fd int) error {
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
}
