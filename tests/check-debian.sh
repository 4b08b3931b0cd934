#!/bin/sh
# check-debian.sh - the Debian packages (debian/) build with
# `dpkg-buildpackage -us -uc -b` from a clean copy of the checkout (the
# files git knows, tracked or not ignored; never the tree in place), each
# .deb holds what it should, and lintian reports no errors. TAP.
#
# Skipped (TAP "1..0 # SKIP": under automake's tap-driver.sh an exit status
# of 77 is an error, not a skip) without dpkg-buildpackage, debhelper or
# lintian, and outside a git checkout (a dist tarball carries no debian/).
# Takes about a minute.
set -u

src=$(cd "${top_srcdir:-.}" && pwd)
skip() { echo "1..0 # SKIP $*"; exit 0; }
for tool in git dpkg-buildpackage dpkg-deb dpkg-architecture dpkg-parsechangelog dh dh_autoreconf lintian; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (apt-get install debhelper lintian)"
done
[ -f "$src/debian/control" ] || skip "no debian/ in $src"
git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1 || skip "$src is not a git checkout"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsync-deb.XXXXXX") || { echo "Bail out! mktemp"; exit 1; }
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $*"; }
check() {   # check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
finish() { echo "1..$n"; exit "$failed"; }

# 1. A clean copy: what git lists (deleted files left out), nothing built.
tree="$tmp/notion-sync"
mkdir "$tree"
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 sh -c 'for f; do if [ -e "$f" ] || [ -L "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
	tar --null -T - -cf -) | tar -C "$tree" -xf -
check "copied the checkout (git ls-files) into $tmp" test -f "$tree/debian/rules" -a -f "$tree/configure.ac" -a ! -e "$tree/Makefile"

# 2. debian/changelog names the version configure.ac builds.
ac_version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$tree/configure.ac")
deb_version=$(dpkg-parsechangelog -l "$tree/debian/changelog" -S Version)
upstream=${deb_version%-*}
check "debian/changelog version $deb_version is configure.ac's $ac_version" test "x$upstream" = "x$ac_version"

# 3. Build, two jobs (make check runs timing-sensitive tests beside it).
# The parent make's jobserver and flags stay out of it.
jobs=2
if (cd "$tree" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u DESTDIR \
	DEB_BUILD_OPTIONS="parallel=$jobs" dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b"
else
	not_ok "dpkg-buildpackage -us -uc -b"
	tail -n 40 "$tmp/build.log" | sed 's/^/# /'
	finish
fi

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb() { echo "$tmp/${1}_${deb_version}_${arch}.deb"; }
for p in notion-sync libnotionsync0 libnotionsync-dev; do
	check "built $(basename "$(deb $p)")" test -f "$(deb $p)"
done

# 4. The file lists.
for p in notion-sync libnotionsync0 libnotionsync-dev; do
	dpkg-deb -c "$(deb $p)" 2>/dev/null | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$tmp/$p.list"
done
has() {   # has PACKAGE PATH
	if grep -qxF "$2" "$tmp/$1.list"; then ok "$1 has $2"; else not_ok "$1 has $2"; fi
}
lacks() {   # lacks PACKAGE REGEX
	bad=$(grep -E "$2" "$tmp/$1.list")
	if [ -z "$bad" ]; then ok "$1 has nothing matching $2"; else not_ok "$1 has nothing matching $2"; echo "$bad" | sed 's/^/# /'; fi
}
for f in /usr/bin/notion-sync /usr/bin/notion-sync-fcgi \
	/lib/systemd/system/notion-sync@.service \
	/etc/nginx/snippets/notion-sync-locations.conf \
	/usr/share/doc/notion-sync/examples/nginx/notion-sync.conf \
	/usr/share/notion-sync/notion-sync.env.example \
	/usr/share/notion-sync/README.md \
	/usr/share/man/man1/notion-sync.1.gz /usr/share/man/man1/notion-sync-fcgi.1.gz \
	/usr/share/doc/notion-sync/copyright; do
	has notion-sync "$f"
done
for f in "$tree"/sql/*.sql; do
	has notion-sync "/usr/share/notion-sync/sql/$(basename "$f")"
done
lacks notion-sync '/usr/local|/usr/lib/|\.so|/usr/include'
has libnotionsync0 "/usr/lib/$ma/libnotionsync.so.0"
has libnotionsync0 "/usr/lib/$ma/libnotionsync.so.0.0.0"
lacks libnotionsync0 '/usr/bin|/usr/include|\.la$|\.so$|pkgconfig'
for f in /usr/include/notionsync.h "/usr/lib/$ma/libnotionsync.so" "/usr/lib/$ma/pkgconfig/notion-sync.pc"; do
	has libnotionsync-dev "$f"
done
lacks libnotionsync-dev '/usr/bin|\.la$|\.a$|\.so\.'

# 5. Contents that matter: the unit runs the packaged responder, the .pc
# points at /usr, the library exports nsync_* only (symbols file), and the
# maintainer scripts create the user but enable and start no template.
dpkg-deb --fsys-tarfile "$(deb notion-sync)" | tar -xOf - ./lib/systemd/system/notion-sync@.service >"$tmp/unit" 2>/dev/null
check "the unit runs /usr/bin/notion-sync-fcgi" grep -q -- '-- /usr/bin/notion-sync-fcgi$' "$tmp/unit"
check "the unit has no unsubstituted @...@" test -z "$(grep '@[a-z]*@' "$tmp/unit")"
dpkg-deb --fsys-tarfile "$(deb libnotionsync-dev)" | tar -xOf - "./usr/lib/$ma/pkgconfig/notion-sync.pc" >"$tmp/pc" 2>/dev/null
check "notion-sync.pc: prefix=/usr, libdir=/usr/lib/$ma" \
	sh -c 'grep -qx "prefix=/usr" "$1" && grep -Eqx "libdir=(/usr|\\\$\\{(exec_)?prefix\\})/lib/$2" "$1"' sh "$tmp/pc" "$ma"
dpkg-deb --info "$(deb libnotionsync0)" symbols >"$tmp/symbols" 2>/dev/null
check "libnotionsync0 has a symbols file" test -s "$tmp/symbols"
bad=$(grep '^ ' "$tmp/symbols" | grep -v '^ nsync_[a-z][a-z0-9_]*@Base ')
check "every exported symbol starts with nsync_" test -z "$bad"
[ -z "$bad" ] || echo "$bad" | sed 's/^/# /'
# dpkg-gensymbols fails the build when a symbol disappears; a new one only
# warns (debian/rules gives it the upstream version): it belongs in
# debian/libnotionsync0.symbols.
if grep -q 'dpkg-gensymbols: warning: .*symbols file' "$tmp/build.log"; then
	not_ok "debian/libnotionsync0.symbols lists exactly the exported symbols"
	sed -n "/^+++ /,/^dh_/{s/^+ \(nsync_[^ ]*\) .*/# new: add the line ' \1 $upstream' to debian\/libnotionsync0.symbols/p;s/^- \(.*\)/# gone: \1/p}" "$tmp/build.log"
else
	ok "debian/libnotionsync0.symbols lists exactly the exported symbols"
fi
mkdir "$tmp/ctl" && dpkg-deb -e "$(deb notion-sync)" "$tmp/ctl"
check "postinst creates the notion-sync system user" grep -q 'adduser .*--system' "$tmp/ctl/postinst"
check "no maintainer script enables or starts notion-sync@.service" \
	test -z "$(cat "$tmp/ctl/"*inst "$tmp/ctl/"*rm 2>/dev/null | grep -E 'deb-systemd-helper (enable|unmask)|deb-systemd-invoke (start|restart) ')"

# 6. lintian: no errors (warnings are listed as comments).
changes="$tmp/notion-sync_${deb_version}_${arch}.changes"
lintian --no-cfg --tag-display-limit 0 "$changes" >"$tmp/lintian.txt" 2>&1
sed -n '/^[EWX]: /s/^/# /p' "$tmp/lintian.txt"
check "lintian reports no errors" test -z "$(grep '^E: ' "$tmp/lintian.txt")"

finish
