# QEMU's Debian packages for scripts/build-packages: Debian's own packaging
# of the pinned QEMU source (its debian/, rules and maintainer scripts), with
# our series appended to its quilt series and these changes for bookworm
# and for a build that fits CI:
# - x86_64 system emulation only: the variables of debian/rules that list
#   targets, builds and firmware are narrowed on make's command line
#   (qemu_rules); no user-mode, Xen or microvm build, no block tests;
# - Build-Depends bookworm lacks: libblkio-dev (trixie and later: no blkio
#   driver), and libbrlapi-dev (braille displays; its bookworm version
#   cannot be installed beside the backports QEMU the rig runs as L0);
# - Depends: seabios (>> 1.16.3-1~), which bookworm-backports has, not
#   Debian's (>> 1.17.0-1~): 1.16.3 has the AHCI fix of Debian's earlier
#   bump, not 1.17's ESP SCSI fixes (so a guest booting from an emulated
#   am53c974/dc390 controller may not boot; virt-install never makes
#   one); ipxe-qemu unversioned, and its ROMs' bookworm path
#   /usr/lib/ipxe/qemu in the firmware path again.
# Source it after lib.sh and source-tree.sh.

QEMU_PROFILES=nocheck,pkg.qemu.omit-user,pkg.qemu.omit-system-xen,pkg.qemu.use-upstream-vdso
# Of Build-Depends-Indep (mostly cross compilers of firmware this build
# does not make), what the narrowed data build runs: dtc for the .dtb
# files of "misc".
QEMU_INDEP_DEPS=device-tree-compiler
# What an x86_64 host with libvirt installs; the other packages the
# narrowed build produces are empty.
QEMU_PACKAGES="qemu-system-x86 qemu-system-common qemu-system-data qemu-utils
	qemu-block-extra qemu-system-gui qemu-system-modules-opengl
	qemu-system-modules-spice"

# qemu_rules_args: make's command line for debian/rules.
qemu_rules_args() {
	printf '%s\n' 'qemu-builds=qemu man html' 'system-packages=x86' \
		'system-archlist-x86=x86_64' \
		'sysdata-components=x86-optionrom qboot misc html' \
		'FIRMWAREPATH=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu' \
		'QEMU_CONFIGURE_OPTIONS=--target-list=x86_64-softmmu'
}

# qemu_deb_dir: the cache folder of this source, series and recipe.
qemu_deb_dir() {
	local dsc=$1 patches files

	mapfile -t patches < <(series_patches "$QEMU_SERIES")
	mapfile -t files < <(series_lines "$QEMU_SERIES" |
		awk '{ for (i = 2; i <= NF; i++) print $i }' | sed 's/:.*//' | sort -u)
	echo "$SECRETVM_CACHE/deb/$(basename "$dsc" .dsc)-$(content_key \
		"$(basename "$dsc") $QEMU_PROFILES $(qemu_rules_args)" \
		"$QEMU_SERIES" "${patches[@]}" "${files[@]/#/$SECRETVM_TOP/}" \
		"$SECRETVM_TOP/scripts/debian-qemu.sh" "$SECRETVM_TOP/scripts/build-packages")"
}

# qemu_prepare: unpack the source with our series in its debian/patches
# and the changes above, once per key; print the source folder.
qemu_prepare() {
	local dsc dir src p

	dsc=$(fetch_source qemu)
	dir=$(qemu_deb_dir "$dsc")
	src=$dir/qemu
	[ -f "$dir/.prepared" ] && { echo "$src"; return 0; }
	lock_tree "$dir"
	[ -f "$dir/.prepared" ] && { echo "$src"; return 0; }
	log "preparing the QEMU package source in $src"
	rm -rf "$src" "$dir/series"
	# The series as git format-patch writes it, real files included.
	prepare_tree "$dsc" "$dir/series-tree" "$QEMU_SERIES"
	git -C "$dir/series-tree" format-patch -q --zero-commit --no-signature \
		-o "$dir/series" refs/tags/pristine..HEAD
	rm -rf "$dir/series-tree"
	dpkg-source -q -x "$dsc" "$src" >/dev/null
	mkdir "$src/debian/patches/secretvm"
	for p in "$dir"/series/*.patch; do
		cp "$p" "$src/debian/patches/secretvm/"
		echo "secretvm/$(basename "$p")" >>"$src/debian/patches/series"
	done
	sed -i -e '/^# --enable-blkio/d' -e '/^ libblkio-dev/d' \
		-e '/^# --enable-brlapi/d' -e '/^ libbrlapi-dev/d' \
		-e 's/^\( seabios\) (>> 1\.17\.0-1~),$/\1 (>> 1.16.3-1~),/' \
		-e 's/^\( ipxe-qemu\) (>> [^)]*),$/\1,/' \
		"$src/debian/control" "$src/debian/control-in"
	grep -q '^ seabios (>> 1.16.3-1~),$' "$src/debian/control" ||
		die "debian/control of $dsc no longer has the seabios Depends this script changes"
	# No braille (brlapi): no chardev-baum module to install.
	sed -i '/chardev-baum\.so/d' "$src/debian/qemu-system-common.install"
	add_changelog_entry "$src" "memory-backend-secret (qemu-patches/), x86_64 only, for bookworm."
	touch "$dir/.prepared"
	echo "$src"
}

# qemu_debs: build the packages once per key; print their folder.
qemu_debs() {
	local src dir p rules

	src=$(qemu_prepare)
	dir=${src%/qemu}
	[ -f "$dir/debs/.done" ] && { echo "$dir/debs"; return 0; }
	lock_tree "$dir"
	[ -f "$dir/debs/.done" ] && { echo "$dir/debs"; return 0; }
	log "building the QEMU packages in $src (dpkg-buildpackage)"
	rules=$dir/rules
	{
		echo '#!/bin/sh'
		printf 'exec make -f debian/rules'
		qemu_rules_args | while read -r p; do printf " '%s'" "$p"; done
		echo ' "$@"'
	} >"$rules"
	chmod +x "$rules"
	# Build-Depends-Indep lists the compilers of firmware this build does
	# not make: check the rest, then build without dpkg's own check.
	(cd "$src" && dpkg-checkbuilddeps -B -P"$QEMU_PROFILES" &&
		dpkg-checkbuilddeps -d "$QEMU_INDEP_DEPS") ||
		die "QEMU's Build-Depends are missing (scripts/setup-host installs them)"
	# /usr/bin first: meson and sphinx are Debian's python3's modules.
	(cd "$src" && PATH=/usr/lib/ccache:/usr/sbin:/usr/bin:/sbin:/bin \
		DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=$JOBS terse" \
		dpkg-buildpackage -b -d -us -uc -P"$QEMU_PROFILES" -R"$rules" \
		>"$dir/build.log" 2>&1) ||
		die "dpkg-buildpackage failed; see $dir/build.log"
	rm -rf "$dir/debs"
	mkdir "$dir/debs"
	for p in $QEMU_PACKAGES; do
		mv "$dir/${p}_"*.deb "$dir/debs/" || die "dpkg-buildpackage made no $p package"
	done
	rm -f "$dir"/*.deb "$dir"/*.buildinfo "$dir"/*.changes
	# The SeaBIOS that qemu-system-x86 depends on (bookworm has 1.16.2).
	cp "$(fetch_source seabios)" "$dir/debs/"
	for p in "$dir"/debs/*.deb; do
		! dpkg-deb -f "$p" Depends | grep -q bpo ||
			die "$p depends on a backport: a -dev package from bookworm-backports was built against"
	done
	touch "$dir/debs/.done"
	echo "$dir/debs"
}
