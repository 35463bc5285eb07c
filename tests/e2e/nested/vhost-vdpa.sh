#!/bin/bash
# Runs in L1 on the patched kernel (from l1-tests.sh), as flat TAP: our
# QEMU refuses vhost-vdpa next to secret RAM, whichever comes first, on
# the kernel's vDPA network simulator (vdpa_sim_net behind vhost_vdpa, as
# /dev/vhost-vdpa-0).  vhost-vdpa pins all guest RAM for the device's DMA,
# which memfd_secret(2) memory does not allow.
#
#   - started with secret RAM and a vhost-vdpa netdev, QEMU exits with
#     status 1; control: with memfd RAM it starts and runs until stopped;
#   - running with memfd RAM and vhost-vdpa, QMP object-add of a
#     memory-backend-secret is refused (GenericError) and QEMU runs on;
#     control: a memory-backend-memfd plugged as a pc-dimm is accepted.
#
# Skips with the reason when L1 cannot make the simulated device.
# Environment: SECRETVM_L1_MODULES (root of L1's installed modules).
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../../.." && pwd)
. "$TOP/scripts/lib.sh"
. "$TOP/scripts/ktap.sh"
. "$TOP/tests/e2e/nested/qmp.sh"

RUN_TIMEOUT=20
DEV_TIMEOUT=10
VDPA_DEV=/dev/vhost-vdpa-0
MIB=$((1 << 20))

tmp=$(mktemp -d)
qemu_pid=""
trap '[ -z "$qemu_pid" ] || kill -KILL "$qemu_pid" 2>/dev/null; /usr/sbin/vdpa dev del vdpa0 2>/dev/null; rm -rf "$tmp"' EXIT
trap "exit 130" INT TERM HUP

# add_vdpa_device: vdpa_sim_net's device, bound to vhost_vdpa; or why not.
add_vdpa_device() {
	local mod

	for mod in vhost_vdpa vdpa_sim_net; do
		/usr/sbin/modprobe -C /dev/null -d "$SECRETVM_L1_MODULES" "$mod" ||
			{ echo "modprobe $mod failed (CONFIG_VHOST_VDPA, CONFIG_VDPA_SIM_NET)"; return 1; }
	done
	/usr/sbin/vdpa dev add mgmtdev vdpasim_net name vdpa0 || { echo "vdpa dev add failed"; return 1; }
	for _ in $(seq $((DEV_TIMEOUT * 10))); do
		[ -c $VDPA_DEV ] && return 0
		sleep 0.1
	done
	echo "no $VDPA_DEV in $DEV_TIMEOUT s after vdpa dev add"
	return 1
}

# vdpa_args BACKEND: set args to QEMU's for 64 MiB of RAM from BACKEND,
# room for one DIMM, and a vhost-vdpa network card.
vdpa_args() {
	args=(-accel kvm -nodefaults -display none
		-object "memory-backend-$1,id=m0,size=64M"
		-machine pc,memory-backend=m0 -m 64M,slots=2,maxmem=1G
		-netdev "vhost-vdpa,vhostdev=$VDPA_DEV,id=n0" -device virtio-net-pci,netdev=n0)
}

# expect_qmp DESC CLASS COMMAND ARGUMENTS: one test, passing when QEMU
# answers with CLASS ("return" or an error class).
expect_qmp() {
	local reply class

	reply=$(qmp "$tmp/qmp" "$3" "$4")
	class=$(qmp_class "$reply")
	ktap_print_msg "$3: $reply"
	if [ "$class" = "$2" ]; then
		ktap_test_pass "$1"
	else
		ktap_test_fail "$1 ($class, $2 expected)"
	fi
}

# backend_json TYPE ID: a 64 MiB memory backend for object-add.
backend_json() {
	jq -nc --arg type "$1" --arg id "$2" --argjson size $((64 * MIB)) \
		'{"qom-type": $type, id: $id, size: $size}'
}

ktap_print_header
[ -c /dev/kvm ] || { echo "1..0 # SKIP no /dev/kvm in L1"; exit 0; }
if ! why=$(add_vdpa_device 2>&1); then
	echo "1..0 # SKIP no vDPA simulator device: ${why//$'\n'/; }"
	exit 0
fi
qemu=$("$TOP/scripts/build-qemu" | tail -n1) || exit 1

# Exit status 124: QEMU still ran after RUN_TIMEOUT s (SeaBIOS finds
# nothing to boot).
vdpa_args secret
ktap_test_status "vhost-vdpa with memory-backend-secret: QEMU refuses to start (exit status 1)" \
	1 timeout "$RUN_TIMEOUT" "$qemu" "${args[@]}"
vdpa_args memfd
ktap_test_status "control: vhost-vdpa with memory-backend-memfd runs" \
	124 timeout "$RUN_TIMEOUT" "$qemu" "${args[@]}"

qmp_fifos "$tmp/qmp"
"$qemu" "${args[@]}" -chardev "pipe,id=qmp,path=$tmp/qmp" -mon chardev=qmp,mode=control \
	</dev/null >"$tmp/qemu.log" 2>&1 &
qemu_pid=$!
if out=$(qmp_open "$tmp/qmp"); then
	expect_qmp "vhost-vdpa running, object-add memory-backend-secret is refused" \
		GenericError object-add "$(backend_json memory-backend-secret s1)"
	expect_qmp "control: object-add memory-backend-memfd" \
		return object-add "$(backend_json memory-backend-memfd d1)"
	expect_qmp "control: device_add pc-dimm on memory-backend-memfd" \
		return device_add '{"driver": "pc-dimm", "id": "dimm1", "memdev": "d1"}'
	reply=$(qmp "$tmp/qmp" query-status)
	ktap_print_msg "query-status: $reply"
	if [ "$(jq -r .return.status <<<"$reply")" = running ]; then
		ktap_test_pass "QEMU runs on after the refusal"
	else
		ktap_test_fail "QEMU runs on after the refusal"
	fi
else
	ktap_print_msg "$out; QEMU said: $(tail -n 3 "$tmp/qemu.log")"
	ktap_test_fail "QEMU with memory-backend-memfd and vhost-vdpa answers QMP"
fi
ktap_finished
