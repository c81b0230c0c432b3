#!/usr/bin/env bash
# Builds vmmfs with AddressSanitizer + UBSan and warnings as errors, runs the
# whole test suite (unit tests and real FUSE mounts), prints every CUnit run
# summary and ends with one line "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh || exit 1

build="$top/build-test"
set -e
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	echo "== autoreconf"
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
	echo "== configure --enable-sanitizers --enable-werror"
	# (configure's "rm -f core" complains about our core/ folder: harmless, hidden)
	"$top/configure" --enable-sanitizers --enable-werror -q 2> >(grep -v "cannot remove 'core'" >&2)
fi
echo "== make"
make -j"$(nproc)" >/dev/null
set +e
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "== make check"
make -j"$(nproc)" check >make-check.out 2>&1
check_rc=$?

passed=0 failed=0
for log in tests/*.log; do
	[ -f "$log" ] || continue
	name=$(basename "$log" .log)
	[ "$name" = test-suite ] && continue
	echo
	echo "== $name"
	if grep -q "Run Summary" "$log"; then
		sed -n '/Run Summary/,/Elapsed/p' "$log"
		read -r p f < <(awk '$1 == "tests" { print $4, $5 }' "$log" | tail -n 1)
		passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
		if grep -q -E "^(FAIL|ERROR):" "${log%.log}.trs" 2>/dev/null && [ "${f:-0}" -eq 0 ]; then
			echo "   $name exited with an error after its run (sanitizer report or crash):"
			grep -E "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error|SUMMARY:" "$log" | head -n 5
			failed=$((failed + 1))
		fi
	else
		echo "   $name did not finish its CUnit run; last lines of its log:"
		tail -n 15 "$log"
		failed=$((failed + 1))
	fi
done
if [ $check_rc -ne 0 ] && [ $failed -eq 0 ]; then
	echo
	echo "make check failed outside the test programs:"
	tail -n 30 make-check.out
	failed=$((failed + 1))
fi
echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
