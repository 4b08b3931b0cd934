#!/bin/sh
# build-pg-net.sh - build and install the real pg_net (supabase/pg_net) into
# Debian's PostgreSQL 15, from the third-party tree ../shared/vendor/pg_net
# beside this repository (Debian does not package pg_net). The tree is never
# copied into the repository: it is built in a temporary folder.
#
#   cli/build-pg-net.sh              pg_net is optional: without the vendor
#                                    tree it says so and exits 0
#   cli/build-pg-net.sh --required   (or NOTION_SYNC_PG_NET=required) absence
#                                    is an error, exit 1 (CI)
#
# Does nothing when pg_net.so and pg_net.control are installed already (and
# are the vendor tree's version, when the tree is there). Otherwise installs
# postgresql-server-dev-15 (the installed server's exact version) and
# libcurl4-openssl-dev with apt-get (directly as root, through sudo
# otherwise), then make and make install with PostgreSQL 15's pg_config.
# Exit status: 0 installed or (optional) unavailable, 1 build or install
# failed, or unavailable when required. NOTION_SYNC_PG_NET_SRC overrides the
# vendor tree's path.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
src=${NOTION_SYNC_PG_NET_SRC:-$top/../shared/vendor/pg_net}
pg_config=/usr/lib/postgresql/15/bin/pg_config
libdir=/usr/lib/postgresql/15/lib
extdir=/usr/share/postgresql/15/extension
required=${NOTION_SYNC_PG_NET:-optional}
[ "${1:-}" = "--required" ] && required=required

say() { echo "build-pg-net: $*" >&2; }
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# The version the vendor tree builds (its Makefile's EXTVERSION), if any.
want=""
if [ -f "$src/Makefile" ]; then
	want=$(sed -n 's/^EXTVERSION *= *\([^ ]*\).*/\1/p' "$src/Makefile" | head -n 1)
fi
have=""
if [ -f "$libdir/pg_net.so" ] && [ -f "$extdir/pg_net.control" ]; then
	have=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$extdir/pg_net.control")
	if [ -z "$want" ] || [ "$have" = "$want" ]; then
		say "pg_net $have is installed"
		exit 0
	fi
	say "pg_net $have is installed; the vendor tree has $want: rebuilding"
fi
if [ ! -f "$src/Makefile" ]; then
	if [ "$required" = "required" ]; then
		say "pg_net is not installed and $src does not exist (required)"
		exit 1
	fi
	say "pg_net is unavailable (not installed, no $src): continuing without it"
	exit 0
fi

# Build dependencies: the server headers and PGXS of the installed server.
pkgs=""
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if ! installed postgresql-server-dev-15; then
	v=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
	if [ -n "$v" ] && apt-cache show "postgresql-server-dev-15=$v" >/dev/null 2>&1; then
		pkgs="postgresql-server-dev-15=$v"
	else
		pkgs="postgresql-server-dev-15"
	fi
fi
installed libcurl4-openssl-dev || pkgs="$pkgs libcurl4-openssl-dev"
if [ -n "$pkgs" ]; then
	say "installing:$pkgs"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq || { say "apt-get update failed"; exit 1; }
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null ||
		{ say "installing$pkgs failed"; exit 1; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pg_net-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The shared copy is read-only: copy it, then make the copy writable.
if ! cp -R "$src/." "$tmp/" || ! chmod -R u+w "$tmp"; then
	say "copying $src failed"
	exit 1
fi
say "building pg_net ${want:-?} from $src in $tmp"
if ! make -C "$tmp" PG_CONFIG="$pg_config" >"$tmp/build.log" 2>&1; then
	tail -n 40 "$tmp/build.log" >&2
	say "make failed"
	exit 1
fi
if ! $SUDO make -C "$tmp" PG_CONFIG="$pg_config" install >"$tmp/install.log" 2>&1; then
	tail -n 40 "$tmp/install.log" >&2
	say "make install failed"
	exit 1
fi
if [ ! -f "$libdir/pg_net.so" ] || [ ! -f "$extdir/pg_net.control" ]; then
	say "make install did not install $libdir/pg_net.so and $extdir/pg_net.control"
	exit 1
fi
say "pg_net ${want:-?} installed into PostgreSQL 15"
