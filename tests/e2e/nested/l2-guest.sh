#!/bin/bash
# Runs in L1 on the patched kernel (from l1-tests.sh), as flat TAP: a Linux
# L2 guest under our QEMU with accel=kvm, its RAM on memory-backend-secret.
# The guest is the rig's own bzImage with the busybox initramfs of
# tests/e2e/nested/l2-init, driven over its serial console.  Checks, one
# test each:
#
#   - it boots, with kvm-clock as its clocksource;
#   - virtio-blk with cache=none and aio=io_uring on L1's scratch disk:
#     4 MiB written, the page cache dropped, read back equal; L1 reads the
#     same data from the disk;
#   - virtio-net on a tap device of L1 (vhost=off): the guest pings L1;
#   - a 32-byte marker in the guest's RAM is in none of L1's host read
#     paths (tests/e2e/host-read-probe and kcore-scan, --expect absent);
#   - a reboot: the same QEMU brings the guest back (boot 2 by the boot
#     counter on its disk);
#   - precopy migration with TLS over a unix socket to a second QEMU on
#     memory-backend-secret, which then runs the guest: a 16 MiB tmpfs
#     file keeps its checksum, and the guest pings L1 through vhost-net
#     (vhost=on; a skip where L1 has no vhost_net).
#
# Then the same guest on memory-backend-memfd, the positive control: every
# host read path finds its marker.  Last, both boot times (QEMU started to
# the guest's READY) and their ratio, as a comment: L2 runs under TCG at
# L0, so only the ratio within one run means anything.
#
# Environment (the env file of scripts/run-nested):
#   SECRETVM_L2_KERNEL  the guest's bzImage (L1's own)
#   SECRETVM_L2_DISK    a scratch block device of L1, overwritten
#   SECRETVM_L1_MODULES root of L1's installed modules (vhost_net)
# Logs (consoles, QEMU's stderr): $SECRETVM_CACHE/l2.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../../.." && pwd)
. "$TOP/scripts/lib.sh"
. "$TOP/scripts/ktap.sh"
. "$TOP/tests/e2e/nested/qmp.sh"

RAM_MIB=128
FILL_MIB=16
PATTERN_MIB=4		# as in l2-init
BOOT_TIMEOUT=300
REPLY_TIMEOUT=120
MIGRATE_TIMEOUT=300
DOWNTIME_MS=10000
PROBE_TIMEOUT=600
QUIT_TIMEOUT=20
MAC=52:54:00:12:34:56
HEX32='[0-9a-f]{64}'	# a SHA-256, or a 32-byte marker
LOGS=$SECRETVM_CACHE/l2

declare -A pid serial_fd booted
ready=
tmp=$(mktemp -d)
cleanup() {
	local p

	for p in "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; done
	ip link del l2tap0 2>/dev/null
	ip link del l2tap1 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP

# add_tap DEV ADDR: a tap device of L1 at ADDR/24, for one QEMU.
add_tap() {
	ip tuntap add dev "$1" mode tap && ip addr add "$2/24" dev "$1" &&
		ip link set "$1" up
}

# vm_start NAME BACKEND QEMU-ARGS...: start the guest in the background
# on RAM from BACKEND; its console goes to $LOGS/NAME.serial and takes
# input from vm_cmd, QMP is on $tmp/NAME.qmp.  Sets pid[NAME].
vm_start() {
	local name=$1 backend=$2 fd

	shift 2
	mkfifo "$tmp/$name.in"
	exec {fd}<>"$tmp/$name.in"
	serial_fd[$name]=$fd
	qmp_fifos "$tmp/$name.qmp"
	booted[$name]=$EPOCHREALTIME
	"$qemu" -nodefaults -display none -accel kvm -cpu host -smp 1 \
		-object "memory-backend-$backend,id=m0,size=${RAM_MIB}M" \
		-machine pc,memory-backend=m0 -m "${RAM_MIB}M" \
		-kernel "$SECRETVM_L2_KERNEL" -initrd "$initrd" -append "console=ttyS0 quiet" \
		-chardev "file,id=s0,path=$LOGS/$name.serial,input-path=$tmp/$name.in" \
		-serial chardev:s0 \
		-chardev "pipe,id=qmp,path=$tmp/$name.qmp" -mon chardev=qmp,mode=control \
		-drive "file=$SECRETVM_L2_DISK,format=raw,if=virtio,cache=none,aio=io_uring" \
		-device "virtio-net-pci,netdev=n0,mac=$MAC" \
		"$@" </dev/null >"$LOGS/$name.stderr" 2>&1 &
	pid[$name]=$!
	qmp_open "$tmp/$name.qmp" >/dev/null
}

# vm_stop NAME: quit over QMP, SIGKILL after QUIT_TIMEOUT.
vm_stop() {
	local p=${pid[$1]}

	QMP_TIMEOUT=$QUIT_TIMEOUT qmp "$tmp/$1.qmp" quit >/dev/null
	timeout "$QUIT_TIMEOUT" tail --pid="$p" -f /dev/null || kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	qmp_close "$tmp/$1.qmp"
	unset "pid[$1]"
}

# vm_wait NAME REGEX [TIMEOUT]: print the first whole console line of NAME
# that matches REGEX once it is there, or why it is not.  (read fails on
# a line the guest is still writing, which ends the search.)
vm_wait() {
	local name=$1 re=$2 limit=${3:-$REPLY_TIMEOUT} line
	local deadline=$((SECONDS + limit))

	while [ $SECONDS -lt $deadline ]; do
		while IFS= read -r line; do
			line=${line%$'\r'}
			[[ $line =~ $re ]] && { echo "$line"; return 0; }
		done 2>/dev/null <"$LOGS/$name.serial"
		if ! kill -0 "${pid[$name]:-0}" 2>/dev/null; then
			echo "QEMU ($name) is not running: $(tail -n 2 "$LOGS/$name.stderr")"
			return 1
		fi
		sleep 0.2
	done
	echo "no '$re' on the console of $name in $limit s (see $LOGS/$name.serial)"
	return 1
}

# vm_cmd NAME COMMAND REGEX [TIMEOUT]: type COMMAND on the console of NAME
# (l2-init) and print its answer.
vm_cmd() {
	echo "$2" >&"${serial_fd[$1]}"
	vm_wait "$1" "${@:3}"
}

# boot NAME BACKEND QEMU-ARGS...: start the guest and wait for its first
# READY; sets booted[NAME] to the seconds it took, and ready to the line.
boot() {
	local name=$1 backend=$2

	ktap_print_msg "$name: booting the L2 guest on memory-backend-$backend ($RAM_MIB MiB, accel=kvm)"
	vm_start "$@"
	if ready=$(vm_wait "$name" '^L2 READY ' $BOOT_TIMEOUT); then
		booted[$name]=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - ${booted[$name]} }")
		ktap_test_pass "$name: Linux boots on memory-backend-$backend with accel=kvm (${booted[$name]} s)"
	else
		echo "$ready" | sed 's/^/# /'
		ktap_test_fail "$name: Linux boots on memory-backend-$backend with accel=kvm"
		booted[$name]=""
	fi
}

# expect_reply DESC REPLY REGEX: pass when the whole answer matches REGEX.
expect_reply() {
	if [[ $2 =~ ^$3$ ]]; then
		ktap_test_pass "$1"
	else
		ktap_print_msg "got: $2"
		ktap_print_msg "expected: $3"
		ktap_test_fail "$1"
	fi
}

# probe NAME EXPECT: write a marker in the guest, and look for it from L1:
# the direct map first, as run-demo does (host-read-probe holds the marker
# itself, and on memfd RAM reads copies into its buffers).
probe() {
	local name=$1 expect=$2 reply marker

	if ! reply=$(vm_cmd "$name" marker '^L2 MARKER ') || ! [[ $reply =~ ^"L2 MARKER "$HEX32$ ]]; then
		ktap_test_fail "$name: marker probes not run: $reply"
		return
	fi
	marker=${reply#L2 MARKER }
	ktap_print_msg "$name: marker $marker; probing QEMU pid ${pid[$name]}, expecting it $expect"
	ktap_include "$name: " timeout "$PROBE_TIMEOUT" "$e2e/kcore-scan" --expect "$expect" "$marker"
	ktap_include "$name: " timeout "$PROBE_TIMEOUT" \
		"$e2e/host-read-probe" --expect "$expect" "${pid[$name]}" "$marker"
}

# migrate FROM TO: precopy FROM's guest into TO (started with -incoming
# defer), over a unix socket with TLS (PSK credentials): RAM that must not
# leave QEMU in the clear may still migrate that way.  Nested under TCG
# the stream moves a few MB/s, less on a busy host, where the default
# downtime limit (300 ms) lets even an idle guest's dirtying keep precopy
# from converging: this test is about the RAM arriving whole, not about
# downtime, so the limit is DOWNTIME_MS.
migrate() {
	local from=$tmp/$1.qmp to=$tmp/$2.qmp reply status deadline=$((SECONDS + MIGRATE_TIMEOUT))
	local tls='{"tls-creds": "tls0"}' uri
	local src_params="{\"tls-creds\": \"tls0\", \"downtime-limit\": $DOWNTIME_MS}"

	uri=$(jq -nc --arg uri "unix:$tmp/migrate.sock" '{uri: $uri}')
	{ qmp "$to" migrate-set-parameters "$tls" && qmp "$to" migrate-incoming "$uri" &&
		qmp "$from" object-add "$(jq -nc --arg dir "$tmp" \
			'{"qom-type": "tls-creds-psk", id: "tls0", endpoint: "client", dir: $dir, username: "l2"}')" &&
		qmp "$from" migrate-set-parameters "$src_params" && qmp "$from" migrate "$uri"; } >"$tmp/migrate.qmp" ||
		{ tail -n1 "$tmp/migrate.qmp"; return 1; }
	while [ $SECONDS -lt $deadline ]; do
		reply=$(qmp "$from" query-migrate) || { echo "$reply"; return 1; }
		status=$(jq -r .return.status <<<"$reply")
		case $status in
		completed)
			jq -r '.return | "\(.ram.transferred / 1048576 | floor) MiB with TLS in \(.["total-time"]) ms,"
				+ " \(.ram["dirty-sync-count"]) dirty syncs, downtime \(.downtime) ms"' <<<"$reply"
			return 0 ;;
		failed | cancelled) echo "migration $status: $(jq -c .return <<<"$reply")"; return 1 ;;
		esac
		sleep 1
	done
	echo "migration not completed in $MIGRATE_TIMEOUT s: $status"
	return 1
}

secret_run() {
	local reply sum l1_sum vhost=on why out

	boot secret secret -netdev tap,id=n0,ifname=l2tap0,script=no,downscript=no,vhost=off
	[ -n "${booted[secret]}" ] || { vm_stop secret; return; }
	expect_reply "secret: the guest's clocksource is kvm-clock" "${ready##*clocksource=}" kvm-clock

	reply=$(vm_cmd secret disk '^L2 DISK ')
	expect_reply "secret: virtio-blk cache=none aio=io_uring: $PATTERN_MIB MiB written, read back after drop_caches" \
		"$reply" "L2 DISK ok $HEX32"
	sum=${reply#L2 DISK ok }
	[[ $sum =~ ^$HEX32$ ]] || sum="no checksum from the guest"
	l1_sum=$(dd if="$SECRETVM_L2_DISK" bs=1M skip=1 count=$PATTERN_MIB iflag=direct 2>/dev/null | sha256sum)
	expect_reply "secret: L1 reads the guest's $PATTERN_MIB MiB from the disk" "${l1_sum%% *}" "$sum"

	reply=$(vm_cmd secret "net 10.0.2.2 10.0.2.1" '^L2 NET ')
	expect_reply "secret: virtio-net vhost=off: the guest pings L1" "$reply" "L2 NET ok"

	probe secret absent

	reply=$(vm_cmd secret reboot '^L2 READY boot=2 ' $BOOT_TIMEOUT)
	expect_reply "secret: the guest reboots in the same QEMU (boot 2)" "$reply" "L2 READY boot=2 .*"

	if ! out=$(/usr/sbin/modprobe -C /dev/null -d "$SECRETVM_L1_MODULES" vhost_net 2>&1) ||
		! [ -c /dev/vhost-net ]; then
		vhost=off why="L1 has no vhost-net: ${out:-no /dev/vhost-net}"
	fi
	reply=$(vm_cmd secret "fill $FILL_MIB" '^L2 FILL ')
	sum=${reply#L2 FILL }
	[[ $sum =~ ^$HEX32$ ]] || sum="no checksum before: $reply"
	ktap_print_msg "secret: the guest's $FILL_MIB MiB tmpfs file: $sum; migrating"
	echo "l2:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/keys.psk"
	vm_start secret-dst secret -netdev "tap,id=n0,ifname=l2tap1,script=no,downscript=no,vhost=$vhost" \
		-object "tls-creds-psk,id=tls0,endpoint=server,dir=$tmp" -incoming defer
	if out=$(migrate secret secret-dst); then
		ktap_test_pass "secret: precopy migration to a second QEMU on memory-backend-secret ($out)"
	else
		ktap_print_msg "$out"
		ktap_test_fail "secret: precopy migration to a second QEMU on memory-backend-secret"
	fi
	vm_stop secret
	reply=$(vm_cmd secret-dst verify '^L2 VERIFY ')
	expect_reply "secret: after migration the guest's $FILL_MIB MiB tmpfs file has its checksum" \
		"$reply" "L2 VERIFY $sum"
	if [ $vhost = on ]; then
		reply=$(vm_cmd secret-dst "net 10.0.3.2 10.0.3.1" '^L2 NET ')
		expect_reply "secret: virtio-net vhost=on after migration: the guest pings L1" "$reply" "L2 NET ok"
	else
		ktap_test_skip "secret: virtio-net vhost=on after migration" "$why"
	fi
	vm_stop secret-dst
}

memfd_run() {
	boot memfd memfd -netdev tap,id=n0,ifname=l2tap0,script=no,downscript=no,vhost=off
	[ -z "${booted[memfd]}" ] || probe memfd found
	vm_stop memfd
}

main() {
	ktap_print_header
	[ -c /dev/kvm ] || { echo "1..0 # SKIP no /dev/kvm in L1"; exit 0; }
	[ -b "${SECRETVM_L2_DISK:-}" ] ||
		{ echo "1..0 # SKIP no scratch disk for the guest (SECRETVM_L2_DISK='${SECRETVM_L2_DISK:-}')"; exit 0; }
	qemu=$("$TOP/scripts/build-qemu" | tail -n1) || exit 1
	e2e=$("$TOP/scripts/build-e2e" | tail -n1) || exit 1
	initrd=$("$TOP/scripts/build-initramfs" "$TOP/tests/e2e/nested/l2-init") || exit 1
	rm -rf "$LOGS"
	mkdir -p "$LOGS"
	add_tap l2tap0 10.0.2.1 && add_tap l2tap1 10.0.3.1 || { echo "cannot add L1's tap devices"; exit 1; }
	# No boot counted yet.
	dd if=/dev/zero of="$SECRETVM_L2_DISK" bs=1M count=1 oflag=direct 2>/dev/null ||
		{ echo "cannot clear $SECRETVM_L2_DISK"; exit 1; }

	secret_run
	memfd_run
	if [ -n "${booted[secret]}" ] && [ -n "${booted[memfd]}" ]; then
		ktap_print_msg "L2 boot to READY: secret ${booted[secret]} s, memfd ${booted[memfd]} s," \
			"secret/memfd $(awk "BEGIN { printf \"%.2f\", ${booted[secret]} / ${booted[memfd]} }")" \
			"(nested under TCG, one run: a figure, not a test)"
	fi
	ktap_print_msg "l2-guest.sh ran $SECONDS s"
	ktap_finished
}

main
