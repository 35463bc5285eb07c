# QEMU tree handling shared by build-qemu and export-qemu-series.
# Source it after lib.sh.

PATCHES=$SECRETVM_TOP/qemu-patches
SERIES=$PATCHES/series

# series_patches, series_copies: the patches, and the REPO:TREE file pairs.
series_patches() {
	awk '!/^[[:space:]]*(#|$)/ { print $1 }' "$SERIES"
}

series_copies() {
	awk '!/^[[:space:]]*(#|$)/ { for (i = 2; i <= NF; i++) print $i }' "$SERIES"
}

# sync_copies TREE: copy the real files into the tree when their content
# differs, keeping mtimes of unchanged files so ninja stays incremental.
sync_copies() {
	local tree=$1 pair src dst

	for pair in $(series_copies); do
		src=$SECRETVM_TOP/${pair%%:*}
		dst=$tree/${pair#*:}
		[ -f "$src" ] || die "qemu-patches/series names $src, which does not exist"
		if ! cmp -s "$src" "$dst"; then
			mkdir -p "$(dirname "$dst")"
			cp "$src" "$dst"
		fi
	done
}

# apply_series TREE: one commit per series line on top of "pristine".
apply_series() {
	local tree=$1 patch pairs pair

	while read -r patch pairs; do
		case "$patch" in '' | '#'*) continue ;; esac
		git -C "$tree" am -q --keep-cr "$PATCHES/$patch" ||
			die "qemu-patches/$patch does not apply to the pristine tree in $tree; refresh it"
		for pair in $pairs; do
			mkdir -p "$(dirname "$tree/${pair#*:}")"
			cp "$SECRETVM_TOP/${pair%%:*}" "$tree/${pair#*:}"
			git -C "$tree" add "${pair#*:}"
		done
		[ -z "$pairs" ] || git -C "$tree" commit -q --amend --no-edit
	done <"$SERIES"
}

# qemu_dir DSC: the cache folder of this source package and patch set.
qemu_dir() {
	local dsc=$1 key

	key=$( (basename "$dsc"; cat "$SERIES"; series_patches | sed "s|^|$PATCHES/|" | xargs -r cat) |
		sha256sum | cut -c1-16)
	echo "$SECRETVM_CACHE/qemu/$(basename "$dsc" .dsc)-$key"
}

# prepare_tree DSC TREE: unpack and patch, once per key.
prepare_tree() {
	local dsc=$1 tree=$2 tmp

	[ -f "$tree/.secretvm-ready" ] && return 0
	log "unpacking $(basename "$dsc") into $tree"
	tmp=$tree.tmp
	rm -rf "$tree" "$tmp"
	mkdir -p "$(dirname "$tree")"
	dpkg-source -q -x "$dsc" "$tmp" >/dev/null
	basename "$dsc" >"$tmp/.secretvm-base"
	git -C "$tmp" init -q -b debian
	git -C "$tmp" config user.name "Secret VM Developers"
	git -C "$tmp" config user.email "secretvm@example.org"
	printf '.pc/\n.secretvm-*\n' >>"$tmp/.git/info/exclude"
	git -C "$tmp" add -A
	git -C "$tmp" commit -q -m "pristine $(basename "$dsc" .dsc)"
	git -C "$tmp" tag pristine
	git -C "$tmp" checkout -q -b secretvm
	mv "$tmp" "$tree"
	apply_series "$tree"
	touch "$tree/.secretvm-ready"
}
