#!/bin/bash
# Runs in the installed system of scripts/run-installed (Debian 12 with our
# packages, booted from its own /boot with systemd), at each boot, from
# secretvm-installed-test.service, as a user of the system libvirt would:
# virt-install and virsh on qemu:///system, with Debian's socket-activated
# libvirtd.  Writes flat TAP to /var/lib/secretvm-test/bootN.tap, which
# scripts/run-installed reads from the disk image afterwards.
#
# Boot 1:
#   - virt-host-validate qemu passes memfd_secret and KVM_CAP_SECRETMEM;
#   - virt-install (Debian's virtinst) creates and starts the marker guest
#     with --memorybacking source.type=secretmem, 256 MiB, KVM, autostart;
#     its QEMU runs as libvirt-qemu, confined by the domain's AppArmor
#     profile, with RLIMIT_MEMLOCK = the guest's RAM, which libvirtd could
#     raise only with its unit's capabilities;
#   - the host read probes (tests/e2e/host-read-probe: /proc/PID/mem,
#     process_vm_readv, ptrace, gcore's core dump; kcore-scan: the direct
#     map) find nothing of the guest's marker, with the errno expected;
#     what they need (gcore, /proc/kcore) is a test of its own, so that
#     none of them can skip;
#   - the same guest on memfd, the positive control: every probe finds the
#     marker;
#   - then reboot.
# Boot 2:
#   - the secretmem guest, set to autostart, runs again with a new
#     marker, and the probes still find nothing;
#   - virsh shutdown ends it (the ACPI power button), the domain is shut
#     off;
#   - apt-get purge of the packages (and autoremove) succeeds and leaves
#     no file, unit link, user or group that the system did not have
#     before they were installed (list-system, before and after; their
#     Debian dependencies were installed before, install-dependencies),
#     but this test's own files and what any running system writes;
#   - then power off.
set -uo pipefail
HERE=/usr/local/lib/secretvm-test
STATE=/var/lib/secretvm-test
. "$HERE/ktap.sh"

RAM_MIB=256
READY_TIMEOUT=300
PROBE_TIMEOUT=600
SHUTDOWN_TIMEOUT=120
SERIAL_DIR=/var/log/libvirt/qemu
# New after the purge, and not the packages': this test's own files, the
# file system's lost+found (mke2fs), and what the booted system writes
# whatever is installed (journal, systemd's state, AppArmor's cache of the
# base system's profiles, gdb's Python cache, temporary files, root's).
RUNTIME_NEW='^(/lost\+found|/root/.*|/tmp/.*|/var/tmp/.*|/var/log/journal(/.*)?|/var/lib/systemd/(linger|random-seed|timers(/.*)?)|/var/cache/apparmor/[^/]+(/(\.features|lsb_release|nvidia_modprobe))?|/usr/share/gdb/python/.*__pycache__(/.*)?|/var/lib/secretvm-test(/.*)?|/usr/local/lib/secretvm-test(/.*)?|/var/lib/libvirt(/boot(/secretvm-marker\.elf)?)?|/etc/systemd/system/(multi-user\.target\.wants/)?secretvm-installed-test\.service)$'
# Gone after the purge, and not by the packages: what mmdebstrap's chroot
# had while list-system ran there (its /dev, /run and /tmp, apt's lists,
# caches and logs, its policy-rc.d), and /etc/apparmor.d/disable, an
# empty folder that dh_apparmor's postrm snippet in Debian's libvirt
# removes on purge (Debian's behaviour, not ours).
CHROOT_GONE='^(/(dev|run|tmp)/.*|/var/cache/apt/.*|/var/lib/apt/lists/.*|/var/log/alternatives\.log|/usr/sbin/(policy-rc\.d|start-stop-daemon\.REAL)|/etc/apt/apt\.conf\.d/00mmdebstrap|/etc/apparmor\.d/disable)$'

boot=$(($(cat "$STATE/boots" 2>/dev/null || echo 0) + 1))
echo $boot >"$STATE/boots"
exec >"$STATE/boot$boot.tap" 2>&1
export LIBVIRT_DEFAULT_URI=qemu:///system DEBIAN_FRONTEND=noninteractive

# guest_up NAME: the domain's QEMU pid, once its marker guest said READY
# on its serial file; sets pid and marker, or fails.
guest_up() {
	local serial=$SERIAL_DIR/$1.serial deadline=$((SECONDS + READY_TIMEOUT))

	pid="" marker=""
	while ! grep -q '^READY' "$serial" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			ktap_test_fail "$1: the marker guest said READY (see $serial)"
			return 1
		fi
		sleep 1
	done
	pid=$(cat "/run/libvirt/qemu/$1.pid")
	marker=$(sed -n 's/^MARKER \([0-9a-f]\{64\}\).*/\1/p' "$serial" | tail -n1)
	if [ ${#marker} != 64 ]; then
		ktap_test_fail "$1: the marker guest printed no marker (see $serial)"
		return 1
	fi
	ktap_test_pass "$1: the marker guest said READY, QEMU pid $pid"
}

# install_guest NAME SOURCE [VIRT-INSTALL-ARGS...]: the marker guest on
# SOURCE memory, made by virt-install, started, and its marker read.
install_guest() {
	local name=$1 source=$2
	shift 2

	ktap_test_result "$name: virt-install --memorybacking source.type=$source" \
		virt-install --name "$name" --virt-type kvm --machine pc \
		--memory "$RAM_MIB" --vcpus 1 --memorybacking "source.type=$source" \
		--boot kernel=/var/lib/libvirt/boot/secretvm-marker.elf --osinfo generic --import \
		--disk none --network none --graphics none --controller usb,model=none \
		--serial "file,path=$SERIAL_DIR/$name.serial" --noautoconsole "$@" &&
		guest_up "$name"
}

# probes NAME EXPECT: the host read probes on the guest's QEMU.
probes() {
	ktap_include "$1: " timeout "$PROBE_TIMEOUT" "$HERE/host-read-probe" --expect "$2" "$pid" "$marker"
	ktap_include "$1: " timeout "$PROBE_TIMEOUT" "$HERE/kcore-scan" --expect "$2" "$marker"
}

# validate_passes CHECK: virt-host-validate qemu says PASS for CHECK.
validate_passes() {
	local out

	out=$(virt-host-validate qemu 2>&1)
	echo "$out"
	grep -F "$1" <<<"$out" | grep -q ': PASS'
}

# memlock_is PID KIB: the process's RLIMIT_MEMLOCK (soft) is KIB.
memlock_is() {
	local limit

	limit=$(awk '/^Max locked memory/ { print $4 / 1024 }' "/proc/$1/limits")
	echo "RLIMIT_MEMLOCK of $1: $limit KiB"
	[ "$limit" = "$2" ]
}

# confined PID NAME: PID runs under domain NAME's AppArmor profile, enforced.
confined() {
	local label

	label=$(cat "/proc/$1/attr/apparmor/current")
	echo "AppArmor label of $1: $label"
	[ "$label" = "libvirt-$(virsh domuuid "$2") (enforce)" ]
}

# runs_as PID USER
runs_as() {
	local user

	user=$(ps -o user= -p "$1")
	echo "$1 runs as $user"
	[ "$user" = "$2" ]
}

# shut_off NAME: virsh shutdown, which presses the ACPI power button, then
# the domain reaches "shut off", and the marker guest said POWEROFF on its
# way (not a fault, which would end it too).
shut_off() {
	local deadline=$((SECONDS + SHUTDOWN_TIMEOUT))

	virsh shutdown "$1" || return 1
	until [ "$(virsh domstate "$1")" = 'shut off' ]; do
		[ $SECONDS -lt $deadline ] || { virsh domstate "$1"; return 1; }
		sleep 1
	done
	grep -q '^POWEROFF' "$SERIAL_DIR/$1.serial" || { tail -n2 "$SERIAL_DIR/$1.serial"; return 1; }
}

# purged: as README "Install on a host" goes back: apt-get purge of the
# packages, autoremove, and the apt pin removed; what is left that the
# system did not have before they were installed is printed, and fails
# the test.
purged() {
	local left

	apt-get purge -y -q $(cat "$STATE/packages") || return 1
	apt-get autoremove --purge -y -q || return 1
	rm /etc/apt/preferences.d/secretvm || return 1
	"$HERE/list-system" "$STATE/after" || return 1
	left=$({
		LC_ALL=C comm -13 "$STATE/before/files" "$STATE/after/files" |
			grep -Ev "$RUNTIME_NEW" | sed 's/^/new: /'
		LC_ALL=C comm -23 "$STATE/before/files" "$STATE/after/files" |
			grep -Ev "$CHROOT_GONE" | sed 's/^/gone: /'
		diff "$STATE/before/accounts" "$STATE/after/accounts" | grep '^[<>]'
		diff "$STATE/before/statoverrides" "$STATE/after/statoverrides" | grep '^[<>]'
	})
	[ -z "$left" ] || { echo "changed by the install and purge:"; echo "$left"; return 1; }
}

ktap_print_header
ktap_print_msg "boot $boot of $(uname -r), $(cut -d' ' -f1 /proc/uptime) s after it started"
case $boot in
1)
	ktap_test_result "virt-host-validate: memfd_secret passes" validate_passes 'memfd_secret'
	ktap_test_result "the host read probes have gcore and /proc/kcore" \
		test -x /usr/bin/gcore -a -r /proc/kcore
	ktap_test_result "virt-host-validate: KVM can map secret memory passes" \
		validate_passes 'KVM can map secret memory'
	# Both guests keep their RAM in QEMU's core dumps (libvirt leaves it
	# out by default), so that the memory source alone differs.
	if install_guest secret secretmem --autostart --xml ./memory/@dumpCore=on; then
		ktap_test_result "secret: QEMU runs as libvirt-qemu" runs_as "$pid" libvirt-qemu
		ktap_test_result "secret: QEMU is confined by the domain's AppArmor profile" \
			confined "$pid" secret
		ktap_test_result "secret: QEMU's RLIMIT_MEMLOCK is the guest's RAM" \
			memlock_is "$pid" $((RAM_MIB * 1024))
		probes secret absent
		echo "$marker" >"$STATE/secret.marker"
	fi
	# The control: memfd, which libvirt maps shared.
	if install_guest control memfd --memorybacking access.mode=shared \
		--xml ./memory/@dumpCore=on; then
		probes control found
	fi
	virsh destroy control >/dev/null 2>&1
	virsh undefine control >/dev/null 2>&1
	next=reboot
	;;
2)
	if [ "$(virsh domstate secret 2>&1)" = running ]; then
		ktap_test_pass "secret: autostarted after the reboot"
		if guest_up secret; then
			ktap_test_result "secret: the guest runs anew (its marker is not boot 1's)" \
				test "$marker" != "$(cat "$STATE/secret.marker")"
			probes secret absent
		fi
		ktap_test_result "secret: virsh shutdown ends it" shut_off secret
	else
		ktap_test_fail "secret: autostarted after the reboot ($(virsh domstate secret 2>&1))"
	fi
	virsh undefine secret >/dev/null 2>&1
	ktap_test_result "apt-get purge leaves none of our files, units or users" purged
	next=poweroff
	;;
*)
	ktap_print_msg "boot $boot: nothing left to test"
	next=poweroff
	;;
esac
ktap_print_msg "boot $boot: tests done $(cut -d' ' -f1 /proc/uptime) s after it started"
echo "1..$KTAP_TESTNO"
echo "# Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL skip:$KTAP_CNT_SKIP"
sync
systemctl --no-block "$next"
