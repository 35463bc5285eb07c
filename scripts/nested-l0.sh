# The L0 side of a nested boot under QEMU TCG, for scripts/run-nested and
# scripts/run-installed: the TSC rate to give L1, and the checks of what
# L0 saw (the run folder's console.log and qemu.stderr).  Source it after
# lib.sh.

# host_tsc_khz: the host's TSC rate in kHz.  Under TCG on a loaded host,
# L1's TSC calibration against the PIT can fail ("Marking TSC unstable"),
# and KVM then refuses to create vCPUs (KVM_GET_TSC_KHZ = 0).  L1's TSC
# runs at the host's rate: L1 is told with tsc_early_khz=.
host_tsc_khz() {
	local khz

	khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
	[ -n "$khz" ] || die "cannot read the host's cpu MHz from /proc/cpuinfo"
	echo "$khz"
}

# no_splat RUN: no kernel splat in RUN/console.log, tests or not.
no_splat() {
	local log=$1/console.log
	local splat='BUG:|WARNING:|KASAN|KFENCE|UBSAN|lockdep|Oops|Kernel panic|INFO: (task|rcu|possible)|Call Trace'
	local benign='RCU lockdep checking is enabled'

	[ -s "$log" ] || { echo "L1 wrote no console log"; return 1; }
	if grep -E "$splat" "$log" | grep -vE "$benign"; then
		echo "see $log"
		return 1
	fi
	echo "$(wc -l <"$log") lines"
}

# l0_ended RC TIMEOUT RUN: L0 QEMU, bounded by timeout(1) to TIMEOUT s,
# exited by itself with status 0.
l0_ended() {
	case $1 in
	0) ;;
	124) echo "timed out after $2 s; see $3/console.log"; return 1 ;;
	*) echo "exit status $1; see $3/qemu.stderr"; return 1 ;;
	esac
}
