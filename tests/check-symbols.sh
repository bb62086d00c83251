#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# libvpm exports exactly the symbols its version script lists, each under a version node,
# and every function the public header declares.
set -euo pipefail
lib=$1 sym=$2 header=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" {print $3}' |
	sed 's/@.*//' | grep -v '^LIBVPM_' | sort -u >"$T/exported"
sed -n '/global:/,/local:/p' "$sym" | grep -oE '^[[:space:]]+[a-z_0-9]+;' | tr -d ' \t;' |
	sort -u >"$T/script"
# the functions the header declares, after the preprocessor has removed its macros
cc -E -P "$header" | grep -oE '\bvpm_[a-z_0-9]+ *\(' | tr -d ' (' | sort -u >"$T/header"

if ! diff -u "$T/script" "$T/exported"; then
	echo "FAIL: exported symbols (+) differ from libvpm.sym (-)" >&2
	exit 1
fi
if ! diff -u "$T/header" "$T/exported"; then
	echo "FAIL: exported symbols (+) differ from the functions in libvpm.h (-)" >&2
	exit 1
fi
# every exported symbol is versioned
if objdump -T "$lib" | awk '/ DF \.text/ && $0 !~ /LIBVPM_/' | grep -q .; then
	echo "FAIL: unversioned exports" >&2
	exit 1
fi
echo "check-symbols: $(wc -l <"$T/exported") symbols, all versioned and declared"
