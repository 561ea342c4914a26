// Package linehost tests docs/line-host.md by doing what it says: its command blocks run as
// they stand, in order, on a build "machine" (a copy of this repository) and on a line host
// (this machine, with the Debian package installed, inside a private network namespace whose
// bridge is the line network eth1), and a QEMU device then PXE boots from the installed
// server and is provisioned. The e2e test is behind the e2e build tag; the check that every
// block of the page says where it runs is an ordinary unit test.
//
// Each fenced block of the page is preceded by a comment naming where it runs:
//
//	<!-- doc-test build -->                      on the build machine, in the checkout
//	<!-- doc-test line-host -->                  on the line host, as root, in the home directory
//	<!-- doc-test line-host device-passed -->    the same, once the device has passed
//	<!-- doc-test config FILE -->                YAML whose top-level keys replace `KEY: []` in FILE
//	<!-- doc-test skip: REASON -->               not run, for the reason given
package linehost
