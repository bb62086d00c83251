#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-fuzzer.sh FUZZER SEED_DIR SECONDS: a bounded libFuzzer run from the seed corpus; any
# crash, leak or sanitizer report fails the test and leaves the reproducer in the log.
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$seeds"/. "$work/"
cd "$work"
"$fuzzer" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 "$work" 2>&1 | tail -n 25
