# Shared settings for the scripts in this folder.  Source it, do not run it.
#
# Everything big (Debian sources, unpacked trees, build directories, ccache)
# lives under $SECRETVM_CACHE, outside the git clone, keyed by content hashes
# so that a rebuild after a patch change is incremental and a clean clone on
# the same machine reuses it.

# Both without symbolic links: L1 mounts overlays over their real paths.
SECRETVM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SECRETVM_CACHE=$(realpath -m "${SECRETVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/secretvm}")
# Debian's ccache masquerade directory: "cc" and "gcc" go through ccache even
# where a build (QEMU's configure, the kernel) names the compiler itself.
export PATH=/usr/lib/ccache:$PATH
export CCACHE_DIR=${CCACHE_DIR:-$SECRETVM_CACHE/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Sources are unpacked once per (version, patch set) and kept, so file
# mtimes in old trees are stable and ccache hits across clones.
export CCACHE_BASEDIR=$SECRETVM_CACHE
export CCACHE_NOHASHDIR=1
JOBS=${JOBS:-$(nproc)}

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

log() {
	echo "==> $(basename "$0"): $*" >&2
}


# lock_tree DIR: hold DIR's lock until this script exits, so that two runs
# (a developer's and CI's, say) never build in one tree at once.
lock_tree() {
	mkdir -p "$1"
	exec {SECRETVM_LOCK_FD}>"$1/.lock"
	flock "$SECRETVM_LOCK_FD"
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL if PID still runs after
# SECONDS.
stop_pid() {
	kill -TERM "$1" 2>/dev/null || return 0
	timeout "$2" tail --pid="$1" -f /dev/null || kill -KILL "$1" 2>/dev/null || true
}

# copy_qemu QEMU DIR: a QEMU build's binary into DIR, where other users can
# run it, with the qemu-bundle/ beside it through which it finds firmware.
copy_qemu() {
	cp "$1" "$2/" && cp -a "${1%/*}/qemu-bundle" "$2/"
}
