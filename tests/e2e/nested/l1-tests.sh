#!/bin/bash
# Runs inside L1, chrooted into the host root over 9p (see init): checks
# that KVM works with NPT, runs the secretmem selftests and the optional
# extra command, and prints TAP.  Each selftest's own TAP is indented
# under the line that sums it up.
#
# Environment (set by scripts/run-nested in run.sh):
#   SECRETVM_TESTS   kernel tree whose tools/testing/selftests are built
#   SECRETVM_EXTRA   optional command run last (e.g. a QEMU accel=kvm test)
#   SECRETMEM_ODIRECT_PATH  scratch block device for the O_DIRECT negative
#   SECRETVM_QEMU    our patched QEMU, run with accel=kvm; empty: not run
#   SECRETVM_PATCHED 1 if L1 runs the kernel series, 0 for the pristine base
#   SECRETVM_TOP, SECRETVM_RESULTS  the clone, and the writable results dir
set -uo pipefail

: "${SECRETVM_TESTS:?SECRETVM_TESTS must name the built kernel tree}"
SECRETVM_EXTRA=${SECRETVM_EXTRA:-}
SECRETVM_QEMU=${SECRETVM_QEMU:-}
st=$SECRETVM_TESTS/tools/testing/selftests
n=0
failed=0

# result STATUS NAME: one TAP line; 0 passes, 4 (KSFT_SKIP) skips.
result() {
	n=$((n + 1))
	case $1 in
	0) echo "ok $n - $2" ;;
	4) echo "ok $n - $2 # SKIP" ;;
	*) echo "not ok $n - $2 (exit $1)"; failed=$((failed + 1)) ;;
	esac
}

# run NAME CMD...: run a command, indent its output, report it.  A
# kselftest whose tests all skipped counts as a skip, not a pass.
run() {
	local name=$1 out=$SECRETVM_RESULTS/out.$n rc
	shift
	echo "# $name"
	"$@" >"$out" 2>&1
	rc=$?
	sed 's/^/    /' "$out"
	[ $rc != 0 ] || ! grep -qE '^# Totals: pass:0 fail:0 .* skip:[1-9]' "$out" || rc=4
	result "$rc" "$name"
}

# qemu_kvm: our QEMU with accel=kvm on secret RAM.  Patched kernel: the
# demo (secret vs memfd guest, probed from L1) must pass.  Pristine kernel:
# QEMU must refuse, naming the missing kernel support.
qemu_kvm() {
	local name out rc

	if [ "$SECRETVM_PATCHED" = 1 ]; then
		run "QEMU accel=kvm: run-demo, secret RAM vs memfd control" \
			env SECRETVM_DEMO_LOGS="$SECRETVM_RESULTS/demo" \
			"$SECRETVM_TOP/scripts/run-demo" --qemu "$SECRETVM_QEMU" --accel kvm
		return
	fi
	name="QEMU accel=kvm refuses memory-backend-secret on a kernel without the series"
	echo "# $name"
	out=$(timeout 60 "$SECRETVM_QEMU" -accel kvm -nodefaults -display none \
		-object memory-backend-secret,id=m0,size=64M \
		-machine pc,memory-backend=m0 -m 64M </dev/null 2>&1)
	rc=$?
	sed 's/^/    /' <<<"$out"
	if [ $rc = 1 ] && grep -q "SECRETMEM_ALLOW_KVM refused" <<<"$out"; then
		result 0 "$name"
	else
		result 1 "$name"
	fi
}

echo "TAP version 13"
plan=3
[ -n "$SECRETVM_QEMU" ] && plan=$((plan + 1))
[ -n "$SECRETVM_EXTRA" ] && plan=$((plan + 1))
echo "1..$plan"
echo "# L1 kernel $(uname -r), $(nproc) CPU(s), $(grep MemTotal /proc/meminfo)"

npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null || echo missing)
if [ -c /dev/kvm ] && [ "$npt" = Y ]; then
	result 0 "L1 has /dev/kvm with kvm_amd npt=Y"
else
	echo "# /dev/kvm: $(ls -l /dev/kvm 2>&1), kvm_amd npt=$npt"
	result 1 "L1 has /dev/kvm with kvm_amd npt=Y"
fi
run "selftests/mm/memfd_secret" "$st/mm/memfd_secret"
run "selftests/kvm/x86/secretmem_test" "$st/kvm/x86/secretmem_test"
[ -z "$SECRETVM_QEMU" ] || qemu_kvm
[ -z "$SECRETVM_EXTRA" ] || run "extra: $SECRETVM_EXTRA" bash -c "$SECRETVM_EXTRA"
[ "$failed" = 0 ]
