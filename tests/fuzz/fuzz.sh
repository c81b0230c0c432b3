#!/usr/bin/env bash
# Long libFuzzer runs (`make fuzz`): both targets at the same time, each for
# VMMFS_FUZZ_SECONDS seconds (default 600), starting from the seed corpora
# and the regression inputs. New corpus entries go to BINDIR/corpus-TARGET/
# (kept between runs, so runs build on each other), crash inputs to
# BINDIR/artifacts/, the full output to BINDIR/fuzz-TARGET.log.
# VMMFS_FUZZ_ARGS adds libFuzzer options (e.g. "-jobs=4 -workers=4").
#
# usage: fuzz.sh BINDIR SRCDIR
set -u
bindir=${1:?usage: fuzz.sh BINDIR SRCDIR}
srcdir=${2:?usage: fuzz.sh BINDIR SRCDIR}
secs=${VMMFS_FUZZ_SECONDS:-600}
targets="mapfile vmm"
declare -A pid
mkdir -p "$bindir/artifacts"
stamp=$bindir/artifacts/.start
touch "$stamp"

for t in $targets; do
	bin=$bindir/fuzz_$t
	if [ ! -x "$bin" ]; then
		echo "fuzz: no $bin; build it with 'make fuzz-bin' (needs clang and libclang-rt-14-dev)" >&2
		exit 1
	fi
	mkdir -p "$bindir/corpus-$t" "$bindir/artifacts"
	dirs=("$bindir/corpus-$t" "$srcdir/tests/fuzz/corpus_$t")
	[ -d "$srcdir/tests/fuzz/regressions/$t" ] && dirs+=("$srcdir/tests/fuzz/regressions/$t")
	echo "fuzz: fuzz_$t for $secs s: $bin -max_total_time=$secs ${VMMFS_FUZZ_ARGS:-} ${dirs[*]}"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=60 -rss_limit_mb=2560 \
		-artifact_prefix="$bindir/artifacts/fuzz_$t-" ${VMMFS_FUZZ_ARGS:-} "${dirs[@]}" \
		>"$bindir/fuzz-$t.log" 2>&1 &
	pid[$t]=$!
done

rc=0
for t in $targets; do
	wait "${pid[$t]}"
	status=$?
	log=$bindir/fuzz-$t.log
	execs=$(awk '/^stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }' "$log")
	rate=$(awk '/^stat::average_exec_per_sec:/ { n += $2 } END { print n + 0 }' "$log")
	new=$(find "$bindir/corpus-$t" -type f | wc -l)
	crashes=$(find "$bindir/artifacts" -name "fuzz_$t-*" -type f -newer "$stamp" | wc -l)
	echo "fuzz_$t: $execs executions in $secs s ($rate/s), corpus $new entries," \
		"$crashes new crash inputs in $bindir/artifacts, exit status $status"
	if [ "$status" -ne 0 ]; then
		rc=1
		echo "fuzz_$t: last lines of $log:"
		tail -n 40 "$log" | sed 's/^/    | /'
	fi
done
exit $rc
