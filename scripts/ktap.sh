# KTAP output for the shell test suites, after kselftest's ktap_helpers.sh.
# Source it, do not run it.  Every stream is flat: one plan, printed at the
# end as TAP allows, one numbering, no indented subtests.  Descriptions
# must not contain '#', which starts a TAP directive.

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
	KTAP_TESTNO=$((KTAP_TESTNO + 1)) KTAP_CNT_PASS=$((KTAP_CNT_PASS + 1))
	echo "ok $KTAP_TESTNO - $1"
}

ktap_test_fail() {
	KTAP_TESTNO=$((KTAP_TESTNO + 1)) KTAP_CNT_FAIL=$((KTAP_CNT_FAIL + 1))
	echo "not ok $KTAP_TESTNO - $1"
}

# ktap_test_skip DESC REASON
ktap_test_skip() {
	KTAP_TESTNO=$((KTAP_TESTNO + 1)) KTAP_CNT_SKIP=$((KTAP_CNT_SKIP + 1))
	echo "ok $KTAP_TESTNO - $1 # SKIP $2"
}

# ktap_test_result DESC CMD...: one test decided by CMD's exit status,
# 0 passes, 4 skips (the reason: CMD's last line), else fails; CMD's
# output becomes comments.
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
# with STATUS: a refusal that must happen, and happen the documented way.
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

# ktap_include PREFIX CMD...: run CMD, a TAP producer, and adopt its
# results into this stream with PREFIX before each description; the rest
# of its output becomes comments.  A failure is added when CMD fails
# without a failed test, runs another number of tests than it planned, or
# runs none without skipping; a skip when it skips without a test (exit 4
# or a "1..0 # SKIP" plan), with the last thing it said as the reason.
#
# With KTAP_XFAIL_UNLESS=REGEX set, each result whose description does not
# match REGEX must fail: its failure is adopted as a pass, and its pass or
# skip as a failure (a test that must fail on a kernel without a fix).
ktap_include() {
	local prefix=$1 line desc directive rc plan="" said="" skip_all=""
	local failed=$KTAP_CNT_FAIL tests=$KTAP_TESTNO xfailed=0 xfail notok
	local unless=${KTAP_XFAIL_UNLESS:-}
	local re='^(not )?ok([[:space:]]+[0-9]+)?([[:space:]]+-)?([[:space:]]+([^#]*[^#[:space:]]))?[[:space:]]*(#[[:space:]]*(.*))?$'
	shift

	while IFS= read -r line || [ -n "$line" ]; do
		if [[ $line =~ $re ]]; then
			desc=${BASH_REMATCH[5]:-${prefix%: }} directive=${BASH_REMATCH[7]}
			notok=${BASH_REMATCH[1]}
			[ -z "${BASH_REMATCH[5]}" ] || desc=$prefix$desc
			xfail=
			[ -z "$unless" ] || [[ $desc =~ $unless ]] || xfail=1
			if [ -n "$notok" ] && [ -n "$xfail" ]; then
				ktap_test_pass "$desc fails, as it must${directive:+ ($directive)}"
				xfailed=1
			elif [ -n "$notok" ]; then
				ktap_test_fail "$desc${directive:+ ($directive)}"
			elif [ -n "$xfail" ]; then
				ktap_test_fail "$desc did not fail${directive:+ ($directive)}"
			elif [[ $directive =~ ^[Ss][Kk][Ii][Pp]\ *(.*) ]]; then
				ktap_test_skip "$desc" "${BASH_REMATCH[1]}"
			else
				ktap_test_pass "$desc"
			fi
		elif [[ $line =~ ^1\.\.0[[:space:]]*#[[:space:]]*[Ss][Kk][Ii][Pp][[:space:]]*(.*) ]]; then
			said=${BASH_REMATCH[1]} skip_all=1
		elif [[ $line =~ ^1\.\.([0-9]+) ]]; then
			plan=${BASH_REMATCH[1]}
		elif [[ $line =~ ^Bail\ out! ]]; then
			ktap_test_fail "$prefix${line#Bail out!}"
		elif [[ $line == '#'* ]]; then
			echo "$line"
		elif [ -n "$line" ] && ! [[ $line =~ ^TAP\ version ]]; then
			echo "# $line"
			said=$line
		fi
	done < <("$@" 2>&1)
	wait $! && rc=0 || rc=$?
	[ -z "$skip_all" ] || [ "$rc" != 0 ] || rc=$KSFT_SKIP
	tests=$((KTAP_TESTNO - tests))
	if [ $tests = 0 ] && [ "$rc" = "$KSFT_SKIP" ]; then
		ktap_test_skip "${prefix%: }" "${said:-exit status $KSFT_SKIP}"
	elif [ "$rc" != 0 ] && [ "$rc" != "$KSFT_SKIP" ] && [ "$KTAP_CNT_FAIL" = "$failed" ] &&
		[ $xfailed = 0 ]; then
		ktap_test_fail "${prefix}exited with status $rc"
	elif [ -n "$plan" ] && [ "$plan" -gt $tests ] && [ "$rc" = "$KSFT_SKIP" ]; then
		# kselftest.h's ksft_exit_skip() once a plan is out
		ktap_test_skip "${prefix%: }" "$((plan - tests)) planned tests not run: ${said:-exit status $KSFT_SKIP}"
	elif [ -n "$plan" ] && [ "$plan" != $tests ]; then
		ktap_test_fail "${prefix}ran $tests tests of the $plan it planned"
	elif [ $tests = 0 ]; then
		ktap_test_fail "${prefix}ran no test"
	fi
}

# ktap_finished: the plan and the totals; exit 1 if a test failed, else 0
# (skips are in the TAP; meson reports a suite that exits 1 as ERROR, and
# scripts/run-tests counts its TAP results one by one all the same).
ktap_finished() {
	echo "1..$KTAP_TESTNO"
	echo "# Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL skip:$KTAP_CNT_SKIP"
	[ "$KTAP_CNT_FAIL" = 0 ] || exit "$KSFT_FAIL"
	exit "$KSFT_PASS"
}
