#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole test suite: install what it needs, then build and test three ways:
#   1. gcc, warnings as errors: unit, integration, crash (matrix and kill -9), packaging and
#      man page checks, the libvirt tier (real libvirtd + QEMU) and the KVM rig
#   2. gcc with AddressSanitizer + UndefinedBehaviorSanitizer: the same suite but the KVM rig,
#      the crash tier on a smaller workload (20 steps, 20 kill rounds, 5 re-attach rounds)
#   3. clang with libFuzzer: each fuzzer for a bounded time (VPM_FUZZ_SECONDS, default 30)
#   4. the README's main-job command (scripts/demo.sh) end to end, twice: fresh and again
# Usage: scripts/test.sh [release|asan|fuzz|demo ...]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(release asan fuzz demo)
jobs=$(nproc)
passed=0 failed=0 failed_names=()

run_variant() {
	local name=$1 dir=build/$1 rc=0
	shift
	echo "=== $name: configure and build"
	cmake -S . -B "$dir" -DVPM_WERROR=ON "$@" >"$dir.configure.log" 2>&1 ||
		{ cat "$dir.configure.log"; return 1; }
	cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1 ||
		{ grep -E "error|warning" "$dir.build.log" | head -50; return 1; }
	echo "=== $name: test"
	ctest --test-dir "$dir" --output-on-failure -j"$jobs" ${CTEST_ARGS:-} | tee "$dir.ctest.log" ||
		rc=$?
	local p f
	p=$(grep -oE '[0-9]+ tests failed out of [0-9]+' "$dir.ctest.log" | tail -n1 | awk '{print $6-$1}')
	f=$(grep -oE '[0-9]+ tests failed out of' "$dir.ctest.log" | tail -n1 | awk '{print $1}')
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	[ "$rc" -eq 0 ] || failed_names+=("$name")
	return 0
}

mkdir -p build
for v in "${variants[@]}"; do
	case "$v" in
	release)
		run_variant release -DCMAKE_BUILD_TYPE=RelWithDebInfo || failed_names+=(release) ;;
	asan)
		# the KVM rig builds and boots Debian's kernel modules: nothing of ours to sanitize;
		# the benches' smoke run is the release one's (the same code, once)
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
			VPM_CRASH_STEPS=20 VPM_KILL_ROUNDS=20 VPM_REATTACH_ROUNDS=5 \
			CTEST_ARGS="-LE kvm|bench" \
			run_variant asan -DCMAKE_BUILD_TYPE=Debug -DVPM_SANITIZE=ON ||
			failed_names+=(asan) ;;
	fuzz)
		CC=clang CTEST_ARGS="-L fuzz" run_variant fuzz -DCMAKE_BUILD_TYPE=Debug -DVPM_FUZZ=ON \
			-DVPM_FUZZ_SECONDS="${VPM_FUZZ_SECONDS:-30}" || failed_names+=(fuzz) ;;
	demo)
		echo "=== demo: scripts/demo.sh, on a fresh demo directory and again on the same one"
		demo_dir=$(mktemp -d /tmp/vpm-demo-test.XXXXXX)
		if VPM_DEMO_DIR=$demo_dir scripts/demo.sh >build/demo.log 2>&1 &&
			VPM_DEMO_DIR=$demo_dir scripts/demo.sh >>build/demo.log 2>&1 &&
			grep -q "vpmd stopped cleanly" build/demo.log; then
			passed=$((passed + 1))
		else
			tail -n 30 build/demo.log
			failed=$((failed + 1))
			failed_names+=(demo)
		fi
		rm -rf "$demo_dir" ;;
	*)
		echo "unknown variant '$v' (release, asan, fuzz, demo)" >&2
		exit 2 ;;
	esac
done

echo
if [ ${#failed_names[@]} -gt 0 ]; then
	echo "FAILED variants: ${failed_names[*]}"
fi
echo "all variants: $passed passed, $failed failed"
[ ${#failed_names[@]} -eq 0 ] && [ "$failed" -eq 0 ]
