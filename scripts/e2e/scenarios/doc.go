// Package scenarios holds the QEMU end-to-end tests of the hardware checks
// (build tag e2e): guests with emulated Wi-Fi (mac80211_hwsim), Bluetooth
// (/dev/vhci), LTE modem and keys run the scenarios/ examples for real.
package scenarios
