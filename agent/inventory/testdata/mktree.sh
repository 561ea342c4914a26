#!/bin/sh
# mktree.sh builds testdata/gmbox, a fake sysfs/procfs tree of a GM-Box with eMMC, NVMe, a
# USB stick, a virtio disk, Ethernet, Wi-Fi, Bluetooth, a Quectel EC25 and buttons. The tree
# is committed; rerun this only to change it.
set -e
cd "$(dirname "$0")"
rm -rf gmbox
R=gmbox
w() { mkdir -p "$(dirname "$R/$1")"; printf '%s\n' "$2" > "$R/$1"; }
l() { mkdir -p "$(dirname "$R/$1")"; ln -s "$2" "$R/$1"; }

w sys/class/dmi/id/sys_vendor "GM Industrial"
w sys/class/dmi/id/product_name "GM-Box 3 LTE"
w sys/class/dmi/id/product_version "B2"
w sys/class/dmi/id/product_serial "GMB3-000123"
w sys/class/dmi/id/product_uuid "4c4c4544-0042-3510-8052-b2c04f4e3732"
w sys/class/dmi/id/board_name "To be filled by O.E.M."
mkdir -p $R/proc
printf 'processor\t: 0\nmodel name\t: Intel(R) Atom(TM) x6425E Processor @ 2.00GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Atom(TM) x6425E Processor @ 2.00GHz\n\nprocessor\t: 2\nmodel name\t: Intel(R) Atom(TM) x6425E Processor @ 2.00GHz\n\nprocessor\t: 3\nmodel name\t: Intel(R) Atom(TM) x6425E Processor @ 2.00GHz\n' > $R/proc/cpuinfo
printf 'MemTotal:        7952340 kB\nMemFree:         7000000 kB\n' > $R/proc/meminfo

P=sys/devices/pci0000:00
# eMMC with boot partitions
w $P/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/name "DG4016"
w $P/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/serial "0x1234abcd"
w $P/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0/size "30777344"
w $P/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0/removable "0"
l $P/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0/device ../../../mmc0:0001
l sys/block/mmcblk0 ../devices/pci0000:00/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0
w $P/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0boot0/size "8192"
l $P/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0boot0/device ../../../mmc0:0001
l sys/block/mmcblk0boot0 ../devices/pci0000:00/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0boot0
# NVMe
w $P/0000:01:00.0/nvme/nvme0/model "Samsung SSD 980 500GB"
w $P/0000:01:00.0/nvme/nvme0/serial "S64DNX0R123456"
w $P/0000:01:00.0/nvme/nvme0/nvme0n1/size "976773168"
l $P/0000:01:00.0/nvme/nvme0/nvme0n1/device ..
l sys/block/nvme0n1 ../devices/pci0000:00/0000:01:00.0/nvme/nvme0/nvme0n1
# virtio disk with a serial in the block directory
w $P/0000:00:04.0/virtio1/block/vda/size "4194304"
w $P/0000:00:04.0/virtio1/block/vda/serial "FLASHLINE-TARGET"
l $P/0000:00:04.0/virtio1/block/vda/device ../..
l sys/block/vda ../devices/pci0000:00/0000:00:04.0/virtio1/block/vda
# USB stick (SCSI over USB) with a VPD serial page
w $P/0000:00:14.0/usb1/1-2/1-2:1.0/host0/target0:0:0/0:0:0:0/model "Cruzer Blade"
mkdir -p $R/$P/0000:00:14.0/usb1/1-2/1-2:1.0/host0/target0:0:0/0:0:0:0
printf '\000\200\000\010CB123456' > $R/$P/0000:00:14.0/usb1/1-2/1-2:1.0/host0/target0:0:0/0:0:0:0/vpd_pg80
w $P/0000:00:14.0/usb1/1-2/1-2:1.0/host0/target0:0:0/0:0:0:0/block/sda/size "31266816"
w $P/0000:00:14.0/usb1/1-2/1-2:1.0/host0/target0:0:0/0:0:0:0/block/sda/removable "1"
l $P/0000:00:14.0/usb1/1-2/1-2:1.0/host0/target0:0:0/0:0:0:0/block/sda/device ../..
l sys/block/sda ../devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host0/target0:0:0/0:0:0:0/block/sda
# a loop device: no device link
w sys/devices/virtual/block/loop0/size "0"
l sys/block/loop0 ../devices/virtual/block/loop0

# USB devices: root hub, modem, stick
w sys/bus/usb/devices/usb1/idVendor "1d6b"
w sys/bus/usb/devices/usb1/idProduct "0002"
w $P/0000:00:14.0/usb1/1-1/idVendor "2c7c"
w $P/0000:00:14.0/usb1/1-1/idProduct "0125"
w $P/0000:00:14.0/usb1/1-1/manufacturer "Quectel"
w $P/0000:00:14.0/usb1/1-1/product "EC25-E"
l sys/bus/usb/devices/1-1 ../../../devices/pci0000:00/0000:00:14.0/usb1/1-1
w $P/0000:00:14.0/usb1/1-2/idVendor "0781"
w $P/0000:00:14.0/usb1/1-2/idProduct "5567"
w $P/0000:00:14.0/usb1/1-2/product "Cruzer Blade"
w $P/0000:00:14.0/usb1/1-2/serial "4C530001"
l sys/bus/usb/devices/1-2 ../../../devices/pci0000:00/0000:00:14.0/usb1/1-2
mkdir -p $R/sys/bus/usb/drivers/option $R/sys/bus/pci/drivers/igc $R/sys/bus/pci/drivers/iwlwifi $R/sys/bus/usb/drivers/btusb
# the modem's AT interface (2) on option
for i in 0 1 2 3; do
  I=$P/0000:00:14.0/usb1/1-1/1-1:1.$i
  w $I/bInterfaceNumber "0$i"
  mkdir -p $R/$I/ttyUSB$i
  l $I/driver ../../../../../../bus/usb/drivers/option
  l sys/class/tty/ttyUSB$i/device ../../../devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.$i/ttyUSB$i
done

# NICs
w $P/0000:02:00.0/net/enp2s0/address "00:30:18:aa:bb:cc"
w $P/0000:02:00.0/net/enp2s0/carrier "1"
w $P/0000:02:00.0/net/enp2s0/speed "1000"
l $P/0000:02:00.0/net/enp2s0/device ../..
l $P/0000:02:00.0/driver ../../../bus/pci/drivers/igc
l sys/class/net/enp2s0 ../../devices/pci0000:00/0000:02:00.0/net/enp2s0
w $P/0000:03:00.0/net/wlan0/address "8c:b8:7e:11:22:33"
mkdir -p $R/$P/0000:03:00.0/net/wlan0/wireless
l $P/0000:03:00.0/net/wlan0/device ../..
l $P/0000:03:00.0/driver ../../../bus/pci/drivers/iwlwifi
l sys/class/net/wlan0 ../../devices/pci0000:00/0000:03:00.0/net/wlan0
w sys/devices/virtual/net/lo/address "00:00:00:00:00:00"
l sys/class/net/lo ../../devices/virtual/net/lo

# radios
w $P/0000:03:00.0/ieee80211/phy0/macaddress "8c:b8:7e:11:22:33"
l $P/0000:03:00.0/ieee80211/phy0/device ../..
l sys/class/ieee80211/phy0 ../../devices/pci0000:00/0000:03:00.0/ieee80211/phy0
mkdir -p $R/$P/0000:00:14.0/usb1/1-3/1-3:1.0/bluetooth/hci0
l $P/0000:00:14.0/usb1/1-3/1-3:1.0/bluetooth/hci0/device ../..
l $P/0000:00:14.0/usb1/1-3/1-3:1.0/driver ../../../../../../bus/usb/drivers/btusb
l sys/class/bluetooth/hci0 ../../devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/bluetooth/hci0

# input: the ACPI power button and gpio-keys with PROG1
w sys/devices/LNXSYSTM:00/LNXPWRBN:00/input/input0/name "Power Button"
w sys/devices/LNXSYSTM:00/LNXPWRBN:00/input/input0/capabilities/key "10000000000000 0"
l sys/devices/LNXSYSTM:00/LNXPWRBN:00/input/input0/event0/device ..
l sys/class/input/event0 ../../devices/LNXSYSTM:00/LNXPWRBN:00/input/input0/event0
w sys/devices/platform/gpio-keys/input/input1/name "gpio-keys"
w sys/devices/platform/gpio-keys/input/input1/capabilities/key "100000 0 0"
l sys/devices/platform/gpio-keys/input/input1/event1/device ..
l sys/class/input/event1 ../../devices/platform/gpio-keys/input/input1/event1
