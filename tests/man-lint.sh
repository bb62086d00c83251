#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lint every man page in the given directory (default: man/ next to this script) with
# mandoc and groff. Any diagnostic is a failure.
set -euo pipefail

dir=${1:-"$(dirname "$0")/../man"}
failed=0
n=0

for page in "$dir"/*.[1-9]; do
	[ -e "$page" ] || continue
	n=$((n + 1))
	name=$(basename "$page")

	if ! out=$(mandoc -T lint -W warning "$page" 2>&1) || [ -n "$out" ]; then
		echo "FAIL: $name: mandoc -T lint -W warning:"
		printf '%s\n' "$out"
		failed=1
	fi
	if ! out=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1 >/dev/null) || [ -n "$out" ]; then
		echo "FAIL: $name: groff -man -ww -z:"
		printf '%s\n' "$out"
		failed=1
	fi
done

if [ "$n" -eq 0 ]; then
	echo "FAIL: no man pages in $dir"
	exit 1
fi
if [ "$failed" -ne 0 ]; then
	exit 1
fi
echo "man-lint: $n pages clean"
