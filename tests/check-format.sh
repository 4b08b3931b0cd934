#!/bin/sh
# check-format.sh - every C file under lib/, fcgi/, cli/ and tests/unit/ is
# formatted as .clang-format says, by clang-format-14 (the version Debian 12
# ships; other versions lay out some code differently). TAP output, one line
# per file; skipped when clang-format-14 is not installed. To fix a file:
# clang-format-14 -i FILE
srcdir="${top_srcdir:-$(dirname "$0")/..}"
cf="${CLANG_FORMAT:-clang-format-14}"

if ! command -v "$cf" >/dev/null 2>&1; then
	echo "1..0 # SKIP $cf is not installed (Debian 12: apt-get install clang-format-14)"
	exit 0
fi
version=$("$cf" --version 2>/dev/null)
case "$version" in
*"version 14."*) ;;
*)
	echo "1..0 # SKIP $cf is not clang-format 14: $version"
	exit 0
	;;
esac

cd "$srcdir" || { echo "1..1"; echo "not ok 1 - cd $srcdir"; exit 0; }
if [ ! -f .clang-format ]; then
	echo "1..1"; echo "not ok 1 - $srcdir/.clang-format exists"; exit 0
fi
files=$(find lib fcgi cli tests/unit -name '*.[ch]' -type f 2>/dev/null | LC_ALL=C sort)
if [ -z "$files" ]; then
	echo "1..1"; echo "not ok 1 - C files found under lib fcgi cli tests/unit"; exit 0
fi

echo "1..$(echo "$files" | wc -l)"
n=0
for f in $files; do
	n=$((n + 1))
	if out=$("$cf" --style=file:.clang-format --dry-run --Werror "$f" 2>&1) && [ -z "$out" ]; then
		echo "ok $n - $f is formatted"
		continue
	fi
	lines=$(echo "$out" | sed -n "s|^$f:\\([0-9]*\\):[0-9]*: error: .*|\\1|p" | uniq)
	echo "not ok $n - $f is formatted ($(echo "$lines" | grep -c .) places differ; clang-format-14 -i $f)"
	if [ -z "$lines" ]; then
		echo "$out" | head -n 5 | sed 's/^/# /'
		continue
	fi
	for l in $(echo "$lines" | head -n 5); do
		printf '# %s:%s: %s\n' "$f" "$l" "$(sed -n "${l}p" "$f")"
	done
done
