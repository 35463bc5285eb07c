# Source trees: a pinned upstream source from Debian with one of our patch
# series on top, for every script that builds, checks or exports QEMU or
# Linux.  Source it after lib.sh.
#
# A series lives in a folder (qemu-patches/, kernel/patches/) beside its
# patches and its cover letter ("cover-letter": subject line, blank line,
# body).  Each line of its "series" file is "PATCH [REPO-FILE:TREE-FILE...]":
# the patch is applied with "git am", and the listed files, kept as real
# files in this repo, join that patch's commit; '#' starts a comment.
#
# A prepared tree is a git repository: the unpacked source committed and
# tagged "pristine", then one commit per series line on branch "secretvm".

# Pinned sources: "DEBIAN-VERSION FILE SHA256" (the hash from Debian's
# signed Sources index).  The mirror answers 404 for some of the newest
# files, so QEMU has a fallback: trixie's 10.0.13, on which hostmem-secret
# builds but the glue series may need a refresh.  Linux has none: the
# series is against 7.1.8, and only its orig tarball is used (the .dsc
# of 7.1.8-2 answers 404).
QEMU_CANDIDATES=(
	"1:10.2.2+ds-1 qemu_10.2.2+ds-1.dsc f1684b3aa5ec500c3389d346c6501dee45041ea91656c6556d4da9023b7987dd"
	"1:10.0.13+ds-0+deb13u1 qemu_10.0.13+ds-0+deb13u1.dsc -"
)
LINUX_SOURCE="7.1.8-2 linux_7.1.8.orig.tar.xz 47f9ce629bc14dd96c16a6a6a8cae4f7f3c3ff6138e2f64befc7bdad426e9728"
# libvirt: the newest version whose source the mirror serves (trixie's; the
# .dsc files answer 404, sid's 12.x files too), so only the orig tarball.
LIBVIRT_SOURCE="11.3.0 libvirt_11.3.0.orig.tar.xz 6bcb0c42c4580436fea262ced56f68a6afe20f7390b1bea2116718cc034a0283"
# Debian's packaging of that tarball (trixie's; scripts/build-packages), the
# hash from trixie's Sources index: the debian.tar.xz is served, its .dsc
# is not.
LIBVIRT_DEBIAN="11.3.0-3+deb13u3 libvirt_11.3.0-3+deb13u3.debian.tar.xz ec073ef64c50ab8732d7a3887a73500d9ebcbc87b1e927d4ec69ea5c58539325"
# The SeaBIOS that our qemu-system-x86 package depends on (bookworm has
# 1.16.2, without the AHCI fix Debian's QEMU asks for; debian-qemu.sh says
# why not 1.17): bookworm-backports' binary package, the hash from its
# Packages index.  Backports keeps only the newest version: when it moves
# on, the same file and hash are on snapshot.debian.org.
SEABIOS_DEB="1.16.3-2~bpo12+1 seabios_1.16.3-2~bpo12+1_all.deb 48390d0a534c66d11789e39518aa219773a9d3677b29fe1af8799dfb563ec713"
QEMU_SERIES=$SECRETVM_TOP/qemu-patches/series
LINUX_SERIES=$SECRETVM_TOP/kernel/patches/series
LIBVIRT_SERIES=$SECRETVM_TOP/libvirt-patches/series

# fetch_file URI NAME SHA256: download one file with apt's own client into
# $SECRETVM_CACHE/src, unless it is there with the right hash.
fetch_file() {
	local dest=$SECRETVM_CACHE/src/$2

	echo "$3  $dest" | sha256sum -c --status 2>/dev/null && return 0
	rm -f "$dest"
	mkdir -p "$SECRETVM_CACHE/src"
	/usr/lib/apt/apt-helper download-file "$1" "$dest" "SHA256:$3" >&2
}

# fetch_source qemu|linux|libvirt|libvirt-debian|seabios: fetch the best
# pinned source (or, for seabios, package) the mirror serves and print its
# path (QEMU: the .dsc, whose files dpkg-source checks).
fetch_source() {
	local c ver file pin uri name size sum pool

	case $1 in
	linux | libvirt | libvirt-debian | seabios)
		case $1 in
		linux) read -r ver file pin <<<"$LINUX_SOURCE" ;;
		libvirt) read -r ver file pin <<<"$LIBVIRT_SOURCE" ;;
		libvirt-debian) read -r ver file pin <<<"$LIBVIRT_DEBIAN" ;;
		seabios) read -r ver file pin <<<"$SEABIOS_DEB" ;;
		esac
		name=${1%-debian}
		# Debian's pool: lib* packages under their first four letters.
		pool=${name:0:1}
		[[ $name != lib* ]] || pool=${name:0:4}
		fetch_file "http://deb.debian.org/debian/pool/main/$pool/$name/$file" "$file" "$pin" ||
			die "cannot fetch $file ($1 $ver)"
		echo "$SECRETVM_CACHE/src/$file"
		return
		;;
	esac
	for c in "${QEMU_CANDIDATES[@]}"; do
		read -r ver file pin <<<"$c"
		while read -r uri name size sum; do
			fetch_file "${uri//\'/}" "$name" "${sum#SHA256:}" || continue 2
		done < <(apt-get source --print-uris -qq "qemu=$ver" 2>/dev/null | grep "^'")
		if [ -f "$SECRETVM_CACHE/src/$file" ] && { [ "$pin" = - ] ||
			echo "$pin  $SECRETVM_CACHE/src/$file" | sha256sum -c --status; }; then
			[ "$c" = "${QEMU_CANDIDATES[0]}" ] ||
				log "WARNING: fell back to QEMU $ver; qemu-patches/ targets ${QEMU_CANDIDATES[0]%% *}"
			echo "$SECRETVM_CACHE/src/$file"
			return
		fi
		log "QEMU $ver cannot be fetched or does not match its pin; trying the next candidate"
	done
	die "no QEMU source could be fetched (scripts/setup-host adds the deb-src entries)"
}

# series_lines SERIES: its lines without comments and blank lines.
series_lines() {
	awk '!/^[[:space:]]*(#|$)/' "$1"
}

# series_patches SERIES: the paths of its patches, in order.
series_patches() {
	series_lines "$1" | awk -v dir="$(dirname "$1")" '{ print dir "/" $1 }'
}

# content_key TEXT FILE...: a short hash of TEXT and the files' contents.
content_key() {
	local text=$1
	shift

	{ echo "$text"; cat "$@" /dev/null; } | sha256sum | cut -c1-16
}

# sync_series_files TREE SERIES: copy the series' real files into TREE
# where their content differs, keeping the mtimes of unchanged files so
# that an incremental build stays incremental.
sync_series_files() {
	local tree=$1 patch pairs pair src dst

	while read -r patch pairs; do
		for pair in $pairs; do
			src=$SECRETVM_TOP/${pair%%:*}
			dst=$tree/${pair#*:}
			[ -f "$src" ] || die "$2 names $src, which does not exist"
			cmp -s "$src" "$dst" && continue
			mkdir -p "$(dirname "$dst")"
			cp "$src" "$dst"
		done
	done < <(series_lines "$2")
}

# apply_series TREE SERIES: one commit per series line.
apply_series() {
	local tree=$1 series=$2 dir patch pairs pair

	dir=$(dirname "$series")
	while read -r patch pairs; do
		git -C "$tree" am -q --keep-cr "$dir/$patch" ||
			die "$dir/$patch does not apply to the pristine tree in $tree; refresh the series"
		[ -n "$pairs" ] || continue
		for pair in $pairs; do
			mkdir -p "$(dirname "$tree/${pair#*:}")"
			cp "$SECRETVM_TOP/${pair%%:*}" "$tree/${pair#*:}"
			git -C "$tree" add "${pair#*:}"
		done
		git -C "$tree" commit -q --amend --no-edit
	done < <(series_lines "$series")
}

# prepare_tree SOURCE TREE [SERIES [UNTRACKED...]]: unpack SOURCE into TREE
# as a git repository tagged "pristine" and apply SERIES, unless TREE was
# prepared already.  UNTRACKED paths stay out of git, as upstream's git
# submodules do, so that checks over "git ls-files" see what upstream's do.
prepare_tree() {
	local source=$1 tree=$2 series=${3:-} tmp=$2.tmp path

	[ -f "$tree/.secretvm-ready" ] && return 0
	log "unpacking $(basename "$source") into $tree"
	rm -rf "$tree" "$tmp"
	mkdir -p "$tmp"
	# A Debian source package gets Debian's own patches; a tarball holds
	# one folder.
	case $source in
	*.dsc) rmdir "$tmp" && dpkg-source -q -x "$source" "$tmp" >/dev/null ;;
	*) tar -C "$tmp" -xf "$source" --strip-components=1 --no-same-owner ;;
	esac
	git -C "$tmp" init -q -b upstream
	git -C "$tmp" config user.name "Secret VM Developers"
	git -C "$tmp" config user.email "secretvm@example.org"
	printf '.pc/\n.secretvm-*\n' >>"$tmp/.git/info/exclude"
	for path in "${@:4}"; do
		echo "/$path/" >>"$tmp/.git/info/exclude"
	done
	git -C "$tmp" add -A
	git -C "$tmp" commit -q -m "pristine $(basename "$source")"
	git -C "$tmp" tag pristine
	git -C "$tmp" checkout -q -b secretvm
	mv "$tmp" "$tree"
	[ -z "$series" ] || apply_series "$tree" "$series"
	touch "$tree/.secretvm-ready"
}

# export_series TREE OUT SERIES: the series as git format-patch writes it,
# with the cover letter filled in from the series' cover-letter file, into
# OUT.  The series is applied afresh in a worktree of TREE at "pristine",
# so that the real files' current contents join their commits.
export_series() {
	local tree=$1 out=$2 series=$3 wt=${1%/src}/export letter cover

	letter=$(dirname "$series")/cover-letter
	[ -f "$letter" ] || die "$letter is missing"
	git -C "$tree" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
	git -C "$tree" worktree prune
	git -C "$tree" worktree add -q --detach "$wt" refs/tags/pristine
	apply_series "$wt" "$series"
	rm -rf "$out"
	git -C "$wt" format-patch -q --zero-commit --no-signature --cover-letter \
		-o "$out" refs/tags/pristine..HEAD
	git -C "$tree" worktree remove --force "$wt"
	cover=$out/0000-cover-letter.patch
	SUBJECT=$(head -n1 "$letter") BODY=$(tail -n +3 "$letter") awk '
		{ sub(/\*\*\* SUBJECT HERE \*\*\*/, ENVIRON["SUBJECT"]) }
		/^\*\*\* BLURB HERE \*\*\*$/ { print ENVIRON["BODY"]; next }
		{ print }' "$cover" >"$cover.new"
	mv "$cover.new" "$cover"
	! grep -q '\*\*\* [A-Z]* HERE \*\*\*' "$cover" || die "placeholders left in $cover"
}
