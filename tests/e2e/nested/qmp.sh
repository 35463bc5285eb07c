# QMP from bash, for the L1 tests that drive our QEMU (vhost-vdpa.sh,
# l2-guest.sh).  Source it, do not run it.  QEMU speaks QMP on a pipe
# chardev, two fifos:
#
#   qmp_fifos PATH      before QEMU starts: make and open PATH.in, PATH.out
#   QEMU ... -chardev pipe,id=qmp,path=PATH -mon chardev=qmp,mode=control
#   qmp_open PATH       the greeting, then out of negotiation mode
#   qmp PATH COMMAND [ARGUMENTS]
#                       one command (ARGUMENTS: a JSON object): prints the
#                       reply; exit status 0 for a return, 1 for an error,
#                       2 when none came in $QMP_TIMEOUT s (QEMU gone or
#                       stuck)
#   qmp_class REPLY     the error class of a reply (GenericError...), or
#                       "return"
#   qmp_close PATH      close the fifos

QMP_TIMEOUT=${QMP_TIMEOUT:-60}
declare -A QMP_FD_IN QMP_FD_OUT

qmp_fifos() {
	local fd

	mkfifo "$1.in" "$1.out" || return
	# Read-write: no open blocks, whoever comes first, and no end closes.
	exec {fd}<>"$1.in"
	QMP_FD_IN[$1]=$fd
	exec {fd}<>"$1.out"
	QMP_FD_OUT[$1]=$fd
}

# qmp_reply PATH: the next greeting or reply, events skipped.
qmp_reply() {
	local line

	while IFS= read -r -t "$QMP_TIMEOUT" line <&"${QMP_FD_OUT[$1]}"; do
		jq -e 'has("return") or has("error") or has("QMP")' <<<"$line" >/dev/null ||
			continue
		echo "$line"
		jq -e 'has("error") | not' <<<"$line" >/dev/null
		return
	done
	echo "no QMP reply from $1 in $QMP_TIMEOUT s"
	return 2
}

qmp_open() {
	qmp_reply "$1" >/dev/null && qmp "$1" qmp_capabilities
}

qmp() {
	jq -nc --arg cmd "$2" --argjson args "${3:-{\}}" '{execute: $cmd, arguments: $args}' \
		>&"${QMP_FD_IN[$1]}" || return 2
	qmp_reply "$1"
}

qmp_class() {
	jq -r '.error.class // "return"' <<<"$1" 2>/dev/null || echo "not QMP: $1"
}

qmp_close() {
	local in=${QMP_FD_IN[$1]} out=${QMP_FD_OUT[$1]}

	exec {in}>&- {out}>&-
	unset "QMP_FD_IN[$1]" "QMP_FD_OUT[$1]"
}
