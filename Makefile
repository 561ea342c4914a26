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
# Extra kernel command line for the demo/tests.
OUT ?= out

export FLASHLINE_KERNEL_DIR := $(KERNEL_DIR)
export FLASHLINE_KERNEL := $(KERNEL)
export FLASHLINE_KVER := $(KVER)
export FLASHLINE_INITRD := $(CURDIR)/initrd.gz

.PHONY: all initrd.gz test unit smoke e2e bench demo setup clean lint-scenarios

all: initrd.gz

setup:
	scripts/setup

initrd.gz:
	go run ./initramfs/mkinitrd -modules-dir $(KERNEL_DIR)/lib/modules/$(KVER) \
		-firmware "$(FIRMWARE_DIR)" -pubkey "$(PUBKEY)" -o $@

# Unit tests (fast, no VM) then the QEMU PXE boot smoke test.
test: unit smoke

unit:
	go vet ./...
	go test -count=1 ./...

smoke: initrd.gz
	go test -count=1 -v -timeout 15m -tags e2e -run 'TestBootSmoke' ./scripts/qemu/

# Longer QEMU runs: every test behind the e2e build tag, one package (one guest) at a time.
e2e: initrd.gz
	go test -count=1 -v -timeout 80m -tags e2e -p 1 ./...

# Benchmarks: every scripts/bench-* prints its figures as ratios against a baseline of the same run.
bench:
	@set -e; for b in scripts/bench-*; do echo "== $$b"; "$$b"; done

demo:
	scripts/demo

clean:
	rm -rf initrd.gz $(OUT)
