# KTAP output for the shell test suites, after kselftest's ktap_helpers.sh.
# Source it, do not run it.
#
#   ktap_print_header
#   ktap_test_pass DESC | ktap_test_fail DESC | ktap_test_skip DESC REASON
#   ktap_test_result DESC CMD...   CMD's exit status decides: 0 pass,
#                                  4 skip, else fail; its output becomes
#                                  comments
#   ktap_test_status DESC N CMD... passes when CMD exits with status N
#   ktap_include PREFIX CMD...     adopt the results of CMD, itself a TAP
#                                  producer, renumbered into this stream
#   ktap_finished                  the plan (at the end, as TAP allows),
#                                  the totals, and the exit status (1 if
#                                  a test failed, else 0)
#
# Every stream is flat: one plan, one numbering, no indented subtests.
# Descriptions must not contain '#', which starts a TAP directive.

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

KTAP_TESTNO=0
KTAP_CNT_PASS=0
KTAP_CNT_FAIL=0
KTAP_CNT_SKIP=0

ktap_print_header() {
	echo "TAP version 13"
}

ktap_print_msg() {
	echo "# $*"
}

ktap_test_pass() {
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_PASS=$((KTAP_CNT_PASS + 1))
	echo "ok $KTAP_TESTNO - $1"
}

ktap_test_fail() {
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_FAIL=$((KTAP_CNT_FAIL + 1))
	echo "not ok $KTAP_TESTNO - $1"
}

ktap_test_skip() {
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_SKIP=$((KTAP_CNT_SKIP + 1))
	echo "ok $KTAP_TESTNO - $1 # SKIP $2"
}

# ktap_test_result DESC CMD...: one test decided by CMD's exit status.
ktap_test_result() {
	local desc=$1 out rc=0
	shift

	out=$("$@" 2>&1) || rc=$?
	[ -z "$out" ] || sed 's/^/# /' <<<"$out"
	case $rc in
	"$KSFT_PASS") ktap_test_pass "$desc" ;;
	"$KSFT_SKIP") ktap_test_skip "$desc" "${out##*$'\n'}" ;;
	*) ktap_test_fail "$desc (exit status $rc)" ;;
	esac
}

# ktap_test_status DESC STATUS CMD...: one test that passes when CMD exits
# with STATUS (a refusal that must happen, and happen the documented way).
ktap_test_status() {
	local desc=$1 want=$2 out rc=0
	shift 2

	out=$("$@" 2>&1) || rc=$?
	[ -z "$out" ] || sed 's/^/# /' <<<"$out"
	if [ "$rc" = "$want" ]; then
		ktap_test_pass "$desc"
	else
		ktap_test_fail "$desc (exit status $rc, $want expected)"
	fi
}

# ktap_include PREFIX CMD...: run CMD, a TAP producer, and adopt its test
# lines with PREFIX before each description; everything else it prints
# becomes comments.  A CMD that fails without a failed test, or bails
# out, adds a failure; one that skips without a test (exit 4 or a
# "1..0 # SKIP" plan) adds a skip, whose reason is the last thing it said.
ktap_include() {
	local prefix=$1 line desc directive rc failed=$KTAP_CNT_FAIL tests=$KTAP_TESTNO
	local skip_all="" said=""
	local re='^(not )?ok( +[0-9]+)?( +-)? *([^#]*[^# ])? *(# *(.*))?$'
	shift

	while IFS= read -r line; do
		if [[ $line =~ $re ]]; then
			desc="$prefix${BASH_REMATCH[4]}"
			directive=${BASH_REMATCH[6]}
			if [ -n "${BASH_REMATCH[1]}" ]; then
				ktap_test_fail "$desc${directive:+ ($directive)}"
			elif [[ $directive =~ ^[Ss][Kk][Ii][Pp]\ *(.*) ]]; then
				ktap_test_skip "$desc" "${BASH_REMATCH[1]}"
			else
				ktap_test_pass "$desc"
			fi
		elif [[ $line =~ ^1\.\.0\ *#\ *[Ss][Kk][Ii][Pp]\ *(.*) ]]; then
			skip_all=${BASH_REMATCH[1]:-skipped}
		elif [[ $line =~ ^(TAP\ version|1\.\.[0-9]+) ]]; then
			continue
		elif [[ $line =~ ^Bail\ out! ]]; then
			ktap_test_fail "$prefix${line#Bail out!}"
		elif [[ $line == '#'* ]]; then
			echo "$line"
		elif [ -n "$line" ]; then
			echo "# $line"
			said=$line
		fi
	done < <("$@" 2>&1)
	wait $! && rc=0 || rc=$?
	if [ "$KTAP_TESTNO" = "$tests" ] && { [ "$rc" = "$KSFT_SKIP" ] || [ -n "$skip_all" ]; }; then
		ktap_test_skip "${prefix%: }" "${skip_all:-${said:-exit status $KSFT_SKIP}}"
	elif [ "$rc" != 0 ] && [ "$rc" != "$KSFT_SKIP" ] && [ "$KTAP_CNT_FAIL" = "$failed" ]; then
		ktap_test_fail "${prefix}exited with status $rc"
	fi
}

# ktap_finished: print the plan and the totals; exit 1 if a test failed,
# else 0 (skips are in the TAP: a harness such as meson's takes any other
# exit status of a TAP producer for an error).
ktap_finished() {
	echo "1..$KTAP_TESTNO"
	echo "# Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL skip:$KTAP_CNT_SKIP"
	[ "$KTAP_CNT_FAIL" = 0 ] || exit "$KSFT_FAIL"
	exit "$KSFT_PASS"
}
