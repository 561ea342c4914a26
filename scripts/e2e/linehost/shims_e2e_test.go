//go:build e2e

package linehost

import (
	"fmt"
	"os"
	"path/filepath"
)

// The page's commands run as they stand; what the test machine lacks is put first on PATH
// as these stand-ins: scp between the build machine and "linehost" (both this machine),
// systemctl and journalctl (the line host's namespace has no systemd of its own: the unit is
// run as systemd would run it, as its User= with only its capabilities).

// scpShim copies; "linehost:PATH" is PATH on this machine, "linehost:" alone or with a
// relative path is under the line host's home directory ($DOCTEST_LINEHOST_HOME).
const scpShim = `#!/bin/bash
set -euo pipefail
map() {
	case $1 in
	linehost:/*) printf '%s' "${1#linehost:}" ;;
	linehost:*) printf '%s/%s' "$DOCTEST_LINEHOST_HOME" "${1#linehost:}" ;;
	*) printf '%s' "$1" ;;
	esac
}
[ $# -ge 2 ] || { echo "scp (doc test): want SOURCE... TARGET" >&2; exit 2; }
args=("$@")
dst=$(map "${args[-1]}")
unset 'args[-1]'
for s in "${args[@]}"; do cp -- "$(map "$s")" "$dst"; done
`

// systemctlShim runs a unit's ExecStart= in the background with its User=, Group=,
// AmbientCapabilities=, CapabilityBoundingSet=, UMask= and StateDirectory=; its output goes
// to $DOCTEST_STATE/UNIT.log (the journal) and its pid to $DOCTEST_STATE/UNIT.pid.
const systemctlShim = `#!/bin/bash
set -euo pipefail
state=$DOCTEST_STATE
unit_file() {
	for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
		if [ -f "$d/$1.service" ]; then echo "$d/$1.service"; return; fi
	done
	echo "systemctl (doc test): unit $1.service not found" >&2
	exit 5
}
key() { sed -n "s/^$1=//p" "$2" | tail -1; }
caps() { key "$1" "$2" | tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_\(.*\)/+\1/p' | paste -sd, -; }
running() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }
start() {
	local u user group sd mode amb bound
	u=$(unit_file "$1")
	running "$1" && return 0
	user=$(key User "$u"); group=$(key Group "$u")
	sd=$(key StateDirectory "$u"); mode=$(key StateDirectoryMode "$u")
	amb=$(caps AmbientCapabilities "$u"); bound=$(caps CapabilityBoundingSet "$u")
	[ -n "$user" ] && [ -n "$amb" ] || { echo "systemctl (doc test): $u has no User= or AmbientCapabilities=" >&2; exit 1; }
	if [ -n "$sd" ]; then install -d -m "${mode:-0755}" -o "$user" -g "${group:-$user}" "/var/lib/$sd"; fi
	# shellcheck disable=SC2046
	(
		umask "$(key UMask "$u")"
		exec setsid setpriv --reuid="$user" --regid="${group:-$user}" --init-groups \
			--inh-caps="$amb" --ambient-caps="$amb" --bounding-set=-all,"$bound" --no-new-privs \
			-- $(key ExecStart "$u")
	) >>"$state/$1.log" 2>&1 </dev/null &
	echo $! >"$state/$1.pid"
}
stop() {
	local pid
	pid=$(cat "$state/$1.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && { echo "systemctl (doc test): $1 did not stop" >&2; exit 1; }
	rm -f "$state/$1.pid"
}
now=false
verb=${1:-}
shift || true
units=()
for a in "$@"; do
	case $a in
	--now) now=true ;;
	-*) ;;
	*) units+=("${a%.service}") ;;
	esac
done
case $verb in
daemon-reload) exit 0 ;;
enable) for u in "${units[@]}"; do unit_file "$u" >/dev/null; $now && start "$u"; done ;;
disable) for u in "${units[@]}"; do $now && stop "$u"; done ;;
start) for u in "${units[@]}"; do start "$u"; done ;;
stop) for u in "${units[@]}"; do stop "$u"; done ;;
restart) for u in "${units[@]}"; do stop "$u"; start "$u"; done ;;
is-active) for u in "${units[@]}"; do running "$u" || exit 3; done ;;
*) echo "systemctl (doc test): $verb not supported" >&2; exit 1 ;;
esac
`

// journalctlShim prints a unit's log; with -f it first waits (up to a minute) for the
// server to say it is listening, then returns: a test cannot follow for ever.
const journalctlShim = `#!/bin/bash
set -euo pipefail
unit= follow=false
while [ $# -gt 0 ]; do
	case $1 in
	-u) unit=${2%.service}; shift ;;
	-f) follow=true ;;
	esac
	shift
done
log=$DOCTEST_STATE/$unit.log
if $follow; then
	for _ in $(seq 600); do
		grep -q 'msg="http listening"' "$log" 2>/dev/null && break
		sleep 0.1
	done
	sleep 1
fi
cat "$log"
`

// writeShims writes the stand-ins into dir, and into qemuDir a qemu-system-x86_64 that runs
// QEMU inside the line network's namespace (where the tap is).
func writeShims(dir, qemuDir, ns string) error {
	files := map[string]string{
		filepath.Join(dir, "scp"):                    scpShim,
		filepath.Join(dir, "systemctl"):              systemctlShim,
		filepath.Join(dir, "journalctl"):             journalctlShim,
		filepath.Join(qemuDir, "qemu-system-x86_64"): fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s /usr/bin/qemu-system-x86_64 \"$@\"\n", ns),
	}
	for path, body := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			return err
		}
	}
	return nil
}
