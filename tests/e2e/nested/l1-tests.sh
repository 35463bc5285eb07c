#!/bin/bash
# Runs inside L1 (see init), as flat TAP: KVM works with NPT, the
# secretmem selftests of the kernel series, and our QEMU with accel=kvm.
#
# Environment (the env file of scripts/run-nested):
#   SECRETVM_L1_KERNEL      patched: L1 runs the series; unpatched: plain
#                           7.1.8; without-kvm: the series minus its KVM
#                           patches (build-kernel --without-kvm)
#   SECRETVM_L1_QEMU        1: run our QEMU (built before the boot); 0: not
#   SECRETVM_L1_MODULES     root of the L1 kernel's installed modules, to
#                           load kvm_amd again with npt=0
#   SECRETVM_L1_SELFTESTS   tools/testing/selftests of a tree with the
#                           series, built
#   SECRETMEM_ODIRECT_PATH  scratch block device for the O_DIRECT negative
#   SECRETVM_RESULTS        the run's folder (set by init), for the demo's logs
#   SECRETVM_L2_KERNEL, SECRETVM_L2_DISK  the L2 guest's kernel and disk
#                           (l2-guest.sh)
#   SECRETVM_L1_SUITE       kvm-selftests: run upstream's x86 KVM selftests
#                           instead (scripts/compare-kvm-selftests), one
#                           result per program, at most
#                           SECRETVM_L1_TEST_TIMEOUT s each; bench: run
#                           scripts/bench-prealloc with
#                           SECRETVM_L1_BENCH_ARGS instead, its table as
#                           comments
#
# mm/memfd_secret_populate (how secret memory is populated: 2 MiB blocks
# with one TLB flush, MADV_POPULATE_WRITE) must fail on the unpatched
# kernel, but for its controls; so must mm/memfd_secret_mm_paths' poisoned
# secret page (mainline maps it back into the direct map when its file
# dies), but not its userfaultfd and MADV_COLLAPSE refusals.
#
# On the patched kernel, scripts/run-demo with accel=kvm must pass: an L2
# guest on memory-backend-secret, unreadable from L1's host paths and
# L1's direct map, and the memfd control readable; vhost-vdpa.sh: our
# QEMU refuses vhost-vdpa next to secret RAM; and l2-guest.sh: a Linux L2
# guest on secret RAM (disk, network, reboot, migration, the same host
# read probes).  On the unpatched one, the kernel refuses
# SECRETMEM_ALLOW_KVM, the KVM selftest skips, our QEMU refuses accel=kvm
# with secret RAM, and the memfd control still runs on KVM.  Without the
# KVM patches, the kernel takes the flag but KVM cannot map the memory:
# every KVM selftest that runs a guest on secret memory must fail (its
# controls on other memory pass), and QEMU refuses as on the unpatched
# kernel (no KVM_CAP_SECRETMEM).  Where the kernel takes the flag, the KVM
# selftest runs again on KVM's shadow MMU (kvm_amd npt=0), without its
# tests of other kernel paths, which do not depend on the MMU.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../../.." && pwd)
. "$TOP/scripts/lib.sh"
. "$TOP/scripts/ktap.sh"

has_npt() {
	local npt

	npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null || echo missing)
	echo "/dev/kvm: $(ls -l /dev/kvm 2>&1); kvm_amd npt=$npt"
	[ -c /dev/kvm ] && [ "$npt" = Y ]
}

# qemu_on ACCEL BACKEND: our QEMU with RAM from BACKEND, for 20 s: exit
# status 124 if it still ran then (SeaBIOS finds nothing to boot).
qemu_on() {
	timeout 20 "$qemu" -accel "$1" -nodefaults -display none \
		-object "memory-backend-$2,id=m0,size=6M" \
		-machine pc,memory-backend=m0 -m 6M </dev/null
}

# shadow_mmu: kvm_amd loaded again with npt=0 and nested SVM (modprobe
# from the host's root, without its configuration; modules from the L1
# kernel's tree).
shadow_mmu() {
	/usr/sbin/rmmod kvm_amd &&
		/usr/sbin/modprobe -C /dev/null -d "$SECRETVM_L1_MODULES" kvm_amd npt=0 nested=1 &&
		[ "$(cat /sys/module/kvm_amd/parameters/npt)" = N ] &&
		[ "$(cat /sys/module/kvm_amd/parameters/nested)" = 1 ]
}

# secretmem_test PREFIX ARGS...: our KVM selftest; on a kernel without the
# KVM patches, each test that needs KVM to map secret memory must fail.
secretmem_test() {
	local prefix=$1

	shift
	if [ "$SECRETVM_L1_KERNEL" = without-kvm ]; then
		KTAP_XFAIL_UNLESS='(not_opted_in_efault|anon_control|anon_slot_control)(\.[a-z_]+)?$' \
			ktap_include "$prefix" "$selftests/kvm/x86/secretmem_test" "$@"
	else
		ktap_include "$prefix" "$selftests/kvm/x86/secretmem_test" "$@"
	fi
}

# kvm_programs: upstream's x86 KVM selftest programs, from Makefile.kvm.
kvm_programs() {
	sed -nE 's/^TEST_GEN_PROGS_(COMMON|x86) \+?= ([^$ ]+)$/\2/p' \
		"$selftests/kvm/Makefile.kvm"
}

ktap_print_header
ktap_print_msg "L1 kernel $(uname -r) ($SECRETVM_L1_KERNEL), $(nproc) CPU(s), $(grep MemTotal /proc/meminfo)"
selftests=$SECRETVM_L1_SELFTESTS
if [ "${SECRETVM_L1_SUITE:-}" = kvm-selftests ]; then
	cd "$selftests/kvm" || exit 1
	for prog in $(kvm_programs); do
		ktap_test_result "$prog" timeout "${SECRETVM_L1_TEST_TIMEOUT:-120}" "./$prog"
	done
	ktap_finished
fi
if [ "${SECRETVM_L1_SUITE:-}" = bench ]; then
	# shellcheck disable=SC2086
	ktap_test_result "bench-prealloc $SECRETVM_L1_BENCH_ARGS" \
		"$TOP/scripts/bench-prealloc" $SECRETVM_L1_BENCH_ARGS
	ktap_finished
fi
e2e=$("$TOP/scripts/build-e2e" | tail -n1)

ktap_test_result "L1 has /dev/kvm with kvm_amd npt=Y" has_npt
ktap_include "mm/memfd_secret: " "$selftests/mm/memfd_secret"
if [ "$SECRETVM_L1_KERNEL" = unpatched ]; then
	# without the population patches, all must fail but the controls and
	# the two that mainline's page-by-page faults pass as well
	KTAP_XFAIL_UNLESS='(concurrent_faults|kcore_memfd_control|kcore_while_memfd_dies|racing_faults_keep_direct_map_whole|forked_mapping_populates_page_alone)$' \
		ktap_include "mm/memfd_secret_populate: " "$selftests/mm/memfd_secret_populate"
else
	ktap_include "mm/memfd_secret_populate: " "$selftests/mm/memfd_secret_populate"
fi
if [ "$SECRETVM_L1_KERNEL" = unpatched ]; then
	# mainline maps a poisoned secret page back when its file dies
	KTAP_XFAIL_UNLESS='(memfd\..*|userfaultfd_register|collapse_refused)$' \
		ktap_include "mm/memfd_secret_mm_paths: " "$selftests/mm/memfd_secret_mm_paths"
else
	ktap_include "mm/memfd_secret_mm_paths: " "$selftests/mm/memfd_secret_mm_paths"
fi
secretmem_test "kvm/secretmem_test: "
if [ "$SECRETVM_L1_KERNEL" = patched ]; then
	ktap_test_status "the kernel accepts SECRETMEM_ALLOW_KVM" 0 "$e2e/secretmem-allows-kvm"
	if [ "$SECRETVM_L1_QEMU" = 1 ]; then
		ktap_include "run-demo accel=kvm: " "$TOP/scripts/run-demo" --accel kvm
		ktap_include "vhost-vdpa: " "$TOP/tests/e2e/nested/vhost-vdpa.sh"
		ktap_include "L2 Linux: " "$TOP/tests/e2e/nested/l2-guest.sh"
	fi
else
	if [ "$SECRETVM_L1_KERNEL" = without-kvm ]; then
		ktap_test_status "the kernel accepts SECRETMEM_ALLOW_KVM" 0 "$e2e/secretmem-allows-kvm"
	else
		ktap_test_status "the kernel refuses SECRETMEM_ALLOW_KVM (EINVAL)" 1 "$e2e/secretmem-allows-kvm"
	fi
	if [ "$SECRETVM_L1_QEMU" = 1 ]; then
		qemu=$("$TOP/scripts/build-qemu" | tail -n1)
		ktap_test_status "QEMU accel=kvm refuses memory-backend-secret at start" 1 qemu_on kvm secret
		ktap_test_status "control: accel=kvm runs on memory-backend-memfd" 124 qemu_on kvm memfd
		ktap_test_status "control: accel=tcg runs on memory-backend-secret" 124 qemu_on tcg secret
		ktap_include "run-demo accel=kvm, memfd control: " \
			"$TOP/scripts/run-demo" --accel kvm --backend memfd
	fi
fi
if [ "$SECRETVM_L1_KERNEL" != unpatched ]; then
	if out=$(shadow_mmu 2>&1); then
		ktap_test_pass "kvm_amd loaded again with npt=0"
		secretmem_test "kvm/secretmem_test npt=0: " -F secret_attack \
			-T kcore_secret_slot_no_hits -T kcore_alias_reads_zeroes \
			-T kcore_anon_slot_control
	else
		[ -z "$out" ] || sed "s/^/# /" <<<"$out"
		ktap_test_fail "kvm_amd loaded again with npt=0"
	fi
fi
# The demo's and the L2 guest's logs live in the cache's overlay, gone
# with L1: keep them.
for logs in "$SECRETVM_CACHE/demo" "$SECRETVM_CACHE/l2"; do
	[ ! -d "$logs" ] || cp -r "$logs" "$SECRETVM_RESULTS/"
done
ktap_finished
