# Flashline build. `make` builds initrd.gz; see README.md for the rest.
SHELL := /bin/bash
export GOFLAGS := -buildvcs=false

# Kernel module tree and kernel image: by default the Debian linux-image-amd64 package that
# scripts/setup unpacks. Override with KERNEL_DIR=/ (the host's own) or any unpacked tree.
KERNEL_DIR ?= /var/cache/flashline/kernel
KVER ?= $(shell ls $(KERNEL_DIR)/lib/modules 2>/dev/null | sort -V | tail -1)
KERNEL ?= $(KERNEL_DIR)/boot/vmlinuz-$(KVER)
# Optional directory of firmware blobs (Wi-Fi/BT) to copy into the initramfs' /lib/firmware.
FIRMWARE_DIR ?=
# Optional ed25519 public key of the line operator, baked into the initramfs (trust issue).
PUBKEY ?=
# Optional PEM CA pinned for HTTPS to the line API (flashline-server tls-init's ca.pem).
CA ?=
# Kernel command line baked into the unified kernel image (fixed under Secure Boot).
UKI_CMDLINE ?= console=ttyS0,115200 console=tty0
OUT ?= out
# Boot media (make usb / make iso): the server URL baked in, or how to discover it
# (e.g. DISCOVER=dns:flashline-server.local), and an optional signed UKI as the UEFI loader.
SERVER ?=
DISCOVER ?=
UKI ?=

export FLASHLINE_KERNEL_DIR := $(KERNEL_DIR)
export FLASHLINE_KERNEL := $(KERNEL)
export FLASHLINE_KVER := $(KVER)
export FLASHLINE_INITRD := $(CURDIR)/initrd.gz

# Tests `make e2e` skips (go test -skip), e.g. one `make test` already ran. TestTaktTime is a
# benchmark (make bench-takt), not a test of the suite.
E2E_SKIP ?= ^TestTaktTime$$
# Version stamp for the binaries: git commit and build time (internal/buildinfo).
STAMP = $(shell go run ./internal/buildinfo/ldflags)

.PHONY: all initrd.gz testbed-initrd firmware uki usb iso e2e-ci e2e-linehost e2e-swarm bench-takt bench-line test unit smoke e2e bench demo setup clean bins flashline-server install deb

all: initrd.gz

# The two binaries for this host, stamped with their version: out/bin/flashline-server and
# out/bin/flashline-agent (the agent for development use; the device's is inside initrd.gz).
bins:
	@mkdir -p $(OUT)/bin
	go build -trimpath -ldflags "$(STAMP)" -o $(OUT)/bin/ ./cmds/flashline-server ./cmds/flashline-agent

setup:
	scripts/setup

initrd.gz:
	go run ./initramfs/mkinitrd -modules-dir $(KERNEL_DIR)/lib/modules/$(KVER) \
		-firmware "$(FIRMWARE_DIR)" -pubkey "$(PUBKEY)" -ca "$(CA)" -o $@

# The agent's initrd plus the in-guest emulators (Wi-Fi AP, Bluetooth peer) and the FTDI driver
# of QEMU's usb-serial modem: for the demo and the QEMU tests only, never for a real line.
# The test initrd also carries the real peers the QEMU tests run when the host has them
# (Debian's hostapd, bluez-test-tools' btvirt, bluez's btmgmt, with their libraries); the
# line's initrd.gz never does.
TESTBED_HOST_BINARIES := $(wildcard /usr/sbin/hostapd /usr/bin/btvirt /usr/bin/btmgmt)
testbed-initrd:
	@mkdir -p $(OUT)
	go run ./initramfs/mkinitrd -modules-dir $(KERNEL_DIR)/lib/modules/$(KVER) \
		-extra ./cmds/flashline-testbed -add-modules ftdi_sio -pubkey "$(PUBKEY)" \
		$(foreach b,$(TESTBED_HOST_BINARIES),-host-binary $(b)) -o $(OUT)/initrd-testbed.gz

# The test firmware the demo flashes: a bootable disk image printing GM-SOFT-KIT BOOTED.
firmware:
	go run ./initramfs/mkfirmware -kernel $(KERNEL) -o $(OUT)/firmware

# Unified kernel image (kernel + initrd.gz + command line in one EFI binary) for Secure Boot;
# sign it with sbsign (docs/trust.md).
uki: initrd.gz
	go run ./initramfs/mkuki -kernel $(KERNEL) -initrd initrd.gz -cmdline "$(UKI_CMDLINE)" -o flashline.efi

# PXE-less devices: a USB stick image and a hybrid ISO that boot the same agent (docs/boot-media.md).
usb: initrd.gz
	@mkdir -p $(OUT)
	go run ./initramfs/mkusb -kernel $(KERNEL) -initrd initrd.gz -server "$(SERVER)" -discover "$(DISCOVER)" -uki "$(UKI)" -usb $(OUT)/flashline-usb.img

iso: initrd.gz
	@mkdir -p $(OUT)
	go run ./initramfs/mkusb -kernel $(KERNEL) -initrd initrd.gz -server "$(SERVER)" -discover "$(DISCOVER)" -uki "$(UKI)" -iso $(OUT)/flashline.iso

# Unit tests (fast, no VM) then the QEMU PXE boot smoke test, after installing what they need
# (scripts/setup is idempotent: a second run only checks).
test: setup unit smoke

# The store's tests run against SQLite and a real PostgreSQL: a throw-away cluster on a unix
# socket (scripts/pg-test-cluster) unless FLASHLINE_TEST_PG_DSN already names one.
unit:
	go vet ./...
	@set -e; if [ -z "$$FLASHLINE_TEST_PG_DSN" ]; then \
		eval "$$(scripts/pg-test-cluster start)"; \
		trap 'scripts/pg-test-cluster destroy "$$FLASHLINE_TEST_PG_DATA"' EXIT; \
	fi; \
	echo "unit: PostgreSQL for the store tests: $$FLASHLINE_TEST_PG_DSN"; \
	go test -count=1 ./...

smoke: initrd.gz
	go test -count=1 -v -timeout 30m -tags e2e -run 'TestBootSmoke' ./testbed/qemu/

# Longer QEMU runs: every test behind the e2e build tag, one package (one guest) at a time.
e2e: initrd.gz testbed-initrd firmware
	go test -count=1 -v -timeout 80m -tags e2e -p 1 $(if $(E2E_SKIP),-skip '$(E2E_SKIP)') ./...

# The QEMU runs CI makes after `make test`: the whole journey with its four failure paths, and
# the scenario examples on emulated hardware. (`make e2e` also boots the netboot matrix, the
# boot media, Secure Boot and the probe tests: about an hour on 2 cores.)
e2e-ci: initrd.gz testbed-initrd firmware
	go test -count=1 -v -timeout 60m -tags e2e -p 1 -run 'TestJourney|TestScenarioExamples' ./scripts/e2e/journey/ ./scripts/e2e/scenarios/

# docs/line-host.md followed to the letter (scripts/e2e/linehost): installs the package on this
# machine (as root; purged afterwards), lays out a line host in a network namespace, serves
# proxy then full DHCP, and provisions a QEMU device each time. About 4 minutes per mode.
e2e-linehost: firmware
	go test -count=1 -v -timeout 45m -tags e2e -p 1 -run 'TestLineHostPage' ./scripts/e2e/linehost/

# Two QEMU devices flashing through the line's BitTorrent swarm (issue 15): the second must take
# well under one image from the server.
e2e-swarm: initrd.gz testbed-initrd firmware
	go test -count=1 -v -timeout 30m -tags e2e -run 'TestJourneySwarmTwoDevices$$' ./scripts/e2e/journey/

# Takt time on QEMU: power-on to PASS of the QEMU scenario one step after another with the
# flash after it, against its parallel group with flash.while_testing (about 10 min).
bench-takt: testbed-initrd firmware
	go test -count=1 -v -timeout 70m -tags e2e -run 'TestTaktTime$$' ./scripts/e2e/journey/

# A virtual line (scripts/bench-line): N agents (N=20) in shaped network namespaces flash one image
# through the BitTorrent swarm and over plain HTTP; KILL=3 also kills 3 of them mid-transfer.
N ?=
KILL ?=
bench-line:
	$(if $(N),BENCH_LINE_N=$(N)) $(if $(KILL),KILL=$(KILL)) scripts/bench-line

# Benchmarks: every scripts/bench-* prints its figures as ratios against a baseline of the same run.
bench:
	@set -e; for b in scripts/bench-*; do echo "== $$b"; "$$b"; done

demo:
	scripts/demo

# The line server (docs/line-host.md): the binary, `make install` for hosts without dpkg
# (PREFIX, DESTDIR as usual), and a Debian package (out/flashline-server_*.deb).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR ?= $(PREFIX)/share/doc/flashline-server

flashline-server:
	@mkdir -p $(OUT)/bin
	CGO_ENABLED=0 go build -trimpath -ldflags "$(STAMP)" -o $(OUT)/bin/flashline-server ./cmds/flashline-server

install: flashline-server
	install -D -m 0755 $(OUT)/bin/flashline-server $(DESTDIR)$(BINDIR)/flashline-server
	@mkdir -p $(DESTDIR)$(UNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|' -e 's|@DOCDIR@|$(DOCDIR)|' packaging/flashline-server.service >$(DESTDIR)$(UNITDIR)/flashline-server.service
	install -D -m 0644 packaging/flashline.sysusers $(DESTDIR)$(SYSUSERSDIR)/flashline.conf
	install -D -m 0644 docs/server.schema.json $(DESTDIR)$(PREFIX)/share/flashline/server.schema.json
	install -D -m 0644 -t $(DESTDIR)$(DOCDIR) docs/server.example.yaml docs/line-host.md docs/server.md docs/netboot.md
	@echo "installed; without dpkg, create the service user with: systemd-sysusers (or useradd --system flashline)"

deb:
	scripts/mkdeb

clean:
	rm -rf initrd.gz flashline.efi $(OUT)
