package qemu

import (
	"bufio"
	"slices"
	"strings"
	"testing"
)

func TestBootArgs(t *testing.T) {
	tests := []struct {
		name    string
		cfg     BootConfig
		want    []string // consecutive argument pairs that must appear
		notWant []string
		err     string
	}{
		{"bios usb", BootConfig{Image: "s.img", Attach: USB, Serial: "S1"},
			[]string{"-smbios", "type=1,serial=S1", "-device", "usb-storage,bus=xhci.0,drive=stick,removable=on,bootindex=0", "-net", "none"}, []string{"if=pflash"}, ""},
		{"uefi cd", BootConfig{Image: "x.iso", Firmware: UEFI, Attach: CDROM},
			[]string{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode, "-device", "ide-cd,drive=cd,bootindex=0"}, []string{"smm=on"}, ""},
		{"secure boot", BootConfig{Image: "esp.img", Firmware: UEFI, SecureBoot: true},
			[]string{"-machine", "q35,smm=on", "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfSecureCode, "-drive", "if=pflash,format=raw,unit=1,file=V"}, nil, ""},
		{"own firmware", BootConfig{Image: "esp.img", Firmware: UEFI, OVMFCode: "/c.fd"},
			[]string{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/c.fd"}, nil, ""},
		{"pxe", BootConfig{Attach: PXE, Net: []string{"-netdev", "tap,id=n0", "-device", "virtio-net-pci,netdev=n0"}},
			[]string{"-boot", "n", "-netdev", "tap,id=n0"}, []string{"-net none"}, ""},
		{"pxe without net", BootConfig{Attach: PXE}, nil, nil, "needs Net"},
		{"bad firmware", BootConfig{Firmware: "coreboot"}, nil, nil, "unknown firmware"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := BootArgs(tt.cfg, "V")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(tt.want); i += 2 {
				if !hasPair(args, tt.want[i], tt.want[i+1]) {
					t.Errorf("missing %s %s in %q", tt.want[i], tt.want[i+1], args)
				}
			}
			for _, no := range tt.notWant {
				if strings.Contains(strings.Join(args, " "), no) {
					t.Errorf("%q in %q", no, args)
				}
			}
		})
	}
}

// TestConsoleLines: firmware consoles end lines with bare CRs and paint with escapes.
func TestConsoleLines(t *testing.T) {
	sc := bufio.NewScanner(strings.NewReader("\x1b[2J\x1b[01;01HiPXE 1.0\rDHCP...\r\nok\x07\n"))
	sc.Split(scanLinesOrCR)
	var got []string
	for sc.Scan() {
		if l := consoleLine(sc.Text()); l != "" {
			got = append(got, l)
		}
	}
	if want := []string{"iPXE 1.0", "DHCP...", "ok"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}

func hasPair(args []string, k, v string) bool {
	for i := 1; i < len(args); i++ {
		if args[i-1] == k && args[i] == v {
			return true
		}
	}
	return false
}
