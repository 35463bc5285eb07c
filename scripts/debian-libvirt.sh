# libvirt's Debian packages for scripts/build-packages: Debian's own
# packaging of libvirt 11.3.0 (trixie's debian/, source-tree.sh pins it:
# the same orig tarball) with our series appended to its quilt series, and
# these changes:
# - Build-Depends debhelper (>= 13.23~), from bookworm-backports, as
#   Debian's own bookworm backport of 11.3.0 has it: its rules install the
#   systemd units under /usr/lib, where bookworm's debhelper 13.11 does not
#   look, and the units would be neither enabled nor started;
# - no Xen, VirtualBox, Ceph (RBD), Gluster or Wireshark packages: drivers
#   and storage back ends a secret-memory KVM host does not use, whose
#   client libraries would double the build and its dependencies
#   (debian/arches.mk, then Debian's own template generator);
# - -Dtests=disabled: the build runs with nocheck, so the unit tests it
#   would compile never run; the project's libvirt suite runs them
#   (scripts/run-libvirt-tests);
# - on purge, the QEMU driver unloads and removes the per-domain AppArmor
#   profiles (virt-aa-helper deletes only their .files when a domain
#   stops), and the daemon package purged last, when no libvirt daemon
#   package is installed any more, removes the folders libvirtd made at
#   run time, once empty (LIBVIRT_SWEPT: dpkg's own removal of a package's
#   folders comes before its purge and gives up on those that are not
#   empty yet): so that "apt-get purge" leaves no file of ours, and
#   purging one package alone takes nothing from the others.
# Source it after lib.sh and source-tree.sh.

LIBVIRT_TRIMMED="ARCHES_XEN ARCHES_VBOX ARCHES_CEPH ARCHES_GLUSTER ARCHES_WIRESHARK"
# What "apt-get install libvirt-daemon-system" installs from Debian's
# packages, Recommends included: the daemon and its drivers, virsh.  The
# rest of the build (LXC, sanlock, ZFS, the sysvinit glue, -dev, docs)
# stays in the cache folder's debs/all.
LIBVIRT_PACKAGES="libvirt0 libvirt-common libvirt-clients libvirt-clients-qemu
	libvirt-daemon libvirt-daemon-common libvirt-daemon-log
	libvirt-daemon-lock libvirt-daemon-plugin-lockd libvirt-daemon-system
	libvirt-daemon-config-network libvirt-daemon-config-nwfilter
	libvirt-daemon-driver-qemu libvirt-daemon-driver-network
	libvirt-daemon-driver-nodedev libvirt-daemon-driver-nwfilter
	libvirt-daemon-driver-secret libvirt-daemon-driver-interface
	libvirt-daemon-driver-storage libvirt-daemon-driver-storage-disk
	libvirt-daemon-driver-storage-iscsi libvirt-daemon-driver-storage-logical
	libvirt-daemon-driver-storage-mpath libvirt-daemon-driver-storage-scsi"

# The run-time folders swept on purge, each before its parent.
LIBVIRT_SWEPT="/etc/libvirt/qemu/autostart /etc/libvirt/qemu/networks/autostart
	/etc/libvirt/qemu/networks /etc/libvirt/qemu /etc/libvirt/storage/autostart
	/etc/libvirt/storage /etc/libvirt/nwfilter /etc/libvirt/secrets /etc/libvirt
	/var/lib/libvirt/qemu/checkpoint /var/lib/libvirt/qemu/save
	/var/lib/libvirt/qemu/snapshot /var/lib/libvirt/qemu/dump
	/var/lib/libvirt/qemu/nvram /var/lib/libvirt/qemu/ram /var/lib/libvirt/qemu
	/var/lib/libvirt/network /var/lib/libvirt/dnsmasq /var/lib/libvirt/images
	/var/lib/libvirt /var/cache/libvirt/qemu /var/cache/libvirt"

# libvirt_purge_sweep PACKAGE: the postrm lines that do the above.
libvirt_purge_sweep() {
	echo '# secretvm: on purge, what libvirt made at run time.'
	[ "$1" != libvirt-daemon-driver-qemu ] || cat <<-'EOF'
	if [ "$1" = purge ]; then
	    for profile in /etc/apparmor.d/libvirt/libvirt-????????-????-????-????-????????????; do
	        [ -f "$profile" ] || continue
	        apparmor_parser -R "$profile" >/dev/null 2>&1 || true
	        rm -f "$profile" /var/cache/apparmor/*/"${profile##*/}"
	    done
	    rmdir --ignore-fail-on-non-empty /etc/apparmor.d/libvirt 2>/dev/null || true
	fi
	EOF
	cat <<-EOF
	if [ "\$1" = purge ] &&
	    ! dpkg-query -W -f '\${db:Status-Status}\n' 'libvirt-daemon*' 2>/dev/null |
	    grep -qvxE 'not-installed|config-files'; then
	    for dir in $(echo $LIBVIRT_SWEPT); do
	        [ ! -d "\$dir" ] || rmdir --ignore-fail-on-non-empty "\$dir" || true
	    done
	fi

	EOF
}

# libvirt_deb_dir: the cache folder of this source, series and recipe.
libvirt_deb_dir() {
	local patches

	mapfile -t patches < <(series_patches "$LIBVIRT_SERIES")
	echo "$SECRETVM_CACHE/deb/libvirt_${LIBVIRT_DEBIAN%% *}-$(content_key \
		"$LIBVIRT_SOURCE $LIBVIRT_DEBIAN $LIBVIRT_TRIMMED" "$LIBVIRT_SERIES" \
		"${patches[@]}" "$SECRETVM_TOP/scripts/debian-libvirt.sh" \
		"$SECRETVM_TOP/scripts/build-packages")"
}

# libvirt_prepare: the orig tarball with Debian's debian/, our series in its
# debian/patches and the changes above, once per key; print the folder.
libvirt_prepare() {
	local orig debian dir src var p

	dir=$(libvirt_deb_dir)
	src=$dir/libvirt
	[ -f "$dir/.prepared" ] && { echo "$src"; return 0; }
	orig=$(fetch_source libvirt)
	debian=$(fetch_source libvirt-debian)
	lock_tree "$dir"
	[ -f "$dir/.prepared" ] && { echo "$src"; return 0; }
	log "preparing the libvirt package source in $src"
	rm -rf "$src"
	mkdir -p "$src"
	tar -C "$src" -xf "$orig" --strip-components=1 --no-same-owner
	tar -C "$src" -xf "$debian" --no-same-owner
	mkdir "$src/debian/patches/secretvm"
	while read -r p; do
		cp "$p" "$src/debian/patches/secretvm/"
		echo "secretvm/$(basename "$p")" >>"$src/debian/patches/series"
	done < <(series_patches "$LIBVIRT_SERIES")
	sed -i 's/^\( *-Dtests=\)enabled \\$/\1disabled \\/' "$src/debian/rules"
	grep -q '^ *-Dtests=disabled \\$' "$src/debian/rules" ||
		die "debian/rules of libvirt no longer has the -Dtests=enabled line this script changes"
	sed -i 's/^ debhelper-compat (= 13),$/&\n debhelper (>= 13.23~),/' "$src/debian/control.in"
	grep -q '^ debhelper (>= 13.23~),$' "$src/debian/control.in" ||
		die "debian/control.in of libvirt no longer has the debhelper-compat line this script extends"
	for var in $LIBVIRT_TRIMMED; do
		sed -i "/^$var = /{ s/\bamd64\b//; s/  */ /g; s/ *$//; }" "$src/debian/arches.mk"
		! grep -Eq "^$var = .*\bamd64\b" "$src/debian/arches.mk" ||
			die "cannot take amd64 out of $var in debian/arches.mk"
	done
	for p in $LIBVIRT_PACKAGES; do
		[ -f "$src/debian/$p.postrm.in" ] || continue
		grep -qx '#DEBHELPER#' "$src/debian/$p.postrm.in" ||
			die "debian/$p.postrm.in has no #DEBHELPER# line to add the purge sweep after"
		libvirt_purge_sweep "$p" >"$dir/sweep"
		sed -i "/^#DEBHELPER#\$/r $dir/sweep" "$src/debian/$p.postrm.in"
	done
	rm -f "$dir/sweep"
	(cd "$src" && debian/scripts/process-templates.py --mode generate >&2) ||
		die "debian/scripts/process-templates.py failed in $src"
	add_changelog_entry "$src" "secretmem memory backing (libvirt-patches/), for bookworm."
	touch "$dir/.prepared"
	echo "$src"
}

# libvirt_debs: build the packages once per key; print their folder.
libvirt_debs() {
	local src dir

	src=$(libvirt_prepare)
	dir=${src%/libvirt}
	[ -f "$dir/debs/.done" ] && { echo "$dir/debs"; return 0; }
	lock_tree "$dir"
	[ -f "$dir/debs/.done" ] && { echo "$dir/debs"; return 0; }
	log "building the libvirt packages in $src (dpkg-buildpackage)"
	# -b, not -B: the network and nwfilter configurations are arch: all.
	(cd "$src" && PATH=/usr/lib/ccache:/usr/sbin:/usr/bin:/sbin:/bin \
		DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=$JOBS terse" \
		dpkg-buildpackage -b -us -uc >"$dir/build.log" 2>&1) ||
		die "dpkg-buildpackage failed; see $dir/build.log"
	rm -rf "$dir/debs"
	mkdir -p "$dir/debs/all"
	mv "$dir"/*.deb "$dir/debs/all/"
	rm -f "$dir"/*.buildinfo "$dir"/*.changes
	for p in $LIBVIRT_PACKAGES; do
		ln "$dir/debs/all/${p}_"*.deb "$dir/debs/" || die "dpkg-buildpackage made no $p package"
	done
	touch "$dir/debs/.done"
	echo "$dir/debs"
}
