#!/bin/sh
# check-symbols.sh - every symbol the shared library exports starts with
# nsync_ (one prefix; not ns_, which glibc's libresolv owns). TAP output.
lib="${top_builddir:-.}/lib/.libs/libnotionsync.so"
echo "1..2"
if [ ! -f "$lib" ]; then
	echo "not ok 1 - $lib exists"; echo "not ok 2 - exports # SKIP no library"; exit 0
fi
echo "ok 1 - $lib exists"
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '^nsync_[a-z]' || true)
if [ -n "$bad" ]; then
	echo "not ok 2 - exported symbols all start with nsync_"
	echo "$bad" | sed 's/^/# unexpected: /'
else
	echo "ok 2 - exported symbols all start with nsync_ ($(nm -D --defined-only "$lib" | grep -c ' T nsync_') functions)"
fi
