#!/bin/bash
# quickstart.sh - the README's first command. Installs what is missing,
# builds, starts a private PostgreSQL cluster and (unless NOTION_TOKEN is
# set) the bundled Notion emulator loaded with a sample story workspace,
# applies the migrations, runs one sync and shows what landed.
#
#   cli/quickstart.sh          start (or restart) and sync
#   cli/quickstart.sh stop     stop everything it started
#
# With NOTION_TOKEN=... it syncs your real Notion workspace instead: the
# databases titled Characters, Worlds, Stories and Chat Sessions that are
# shared with that integration.
# State lives in .stack/ (git-ignored); nothing system-wide is started.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
stack="$top/.stack"
pgbin=/usr/lib/postgresql/15/bin
user_id=00000000-0000-4000-8000-000000000001

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop() {
	if [ -f "$stack/emulator.pid" ]; then
		kill "$(cat "$stack/emulator.pid")" 2>/dev/null || true
		rm -f "$stack/emulator.pid"
	fi
	if [ -f "$stack/pg/postmaster.pid" ]; then
		as_pg "$pgbin/pg_ctl" -D "$stack/pg" -m fast -w stop >/dev/null || true
	fi
	echo "stopped"
}

if [ "${1:-}" = stop ]; then
	stop
	exit 0
fi

"$top/cli/install-deps.sh"
cd "$top"
if [ ! -x cli/notion-sync ] || [ ! -x fcgi/notion-sync-fcgi ]; then
	[ -x configure ] || ./autogen.sh >/dev/null
	[ -f Makefile ] || ./configure -q
	make -j2 >/dev/null
fi
stop >/dev/null 2>&1 || true
mkdir -p "$stack"
[ "$(id -u)" -eq 0 ] && chown postgres: "$stack" && chmod 755 "$stack"

# PostgreSQL: a private cluster on a unix socket in .stack/.
if [ ! -d "$stack/pg" ]; then
	as_pg "$pgbin/initdb" -A trust --no-sync -E UTF8 --locale=C -U postgres -D "$stack/pg" >/dev/null
	cat >>"$stack/pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$stack'
fsync = off
CONF
fi
as_pg "$pgbin/pg_ctl" -D "$stack/pg" -l "$stack/postgres.log" -w start >/dev/null
psql -X -q -h "$stack" -U postgres -d postgres -tc "select 1 from pg_database where datname='notion_sync'" |
	grep -q 1 || psql -X -q -h "$stack" -U postgres -d postgres -c "create database notion_sync"
export DATABASE_URL="host=$stack dbname=notion_sync user=postgres"
cli/notion-sync migrate --sql-dir "$top/sql"

if [ -n "${NOTION_TOKEN:-}" ]; then
	echo "using real Notion with the token in NOTION_TOKEN"
	unset NOTION_API_URL
	cli/notion-sync set-token --user "$user_id" >/dev/null
else
	port_file="$stack/emulator.port"
	rm -f "$port_file"
	python3 tests/emulator/notion_emulator.py --port 0 --port-file "$port_file" --quiet \
		>"$stack/emulator.log" 2>&1 &
	echo $! >"$stack/emulator.pid"
	for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.1; done
	emu="http://127.0.0.1:$(cat "$port_file")"
	export NOTION_API_URL="$emu"
	ctl() { curl -sf -X "$1" -H 'Content-Type: application/json' --data "$3" "$emu/_emulator$2"; }
	token=secret_local_sample_workspace_token
	ctl POST /reset '{}' >/dev/null
	ctl POST /tokens "{\"token\":\"$token\",\"integration_name\":\"notion-sync quickstart\",\"databases\":[]}" >/dev/null
	for spec in "Characters:24" "Worlds:6" "Stories:12" "Chat Sessions:9"; do
		kind=${spec%%:*}
		count=${spec##*:}
		ds=$(ctl POST /databases "{\"title\":\"$kind\",\"token\":\"$token\"}" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["data_source_ids"][0])')
		ctl POST /generate "{\"data_source_id\":\"$ds\",\"count\":$count,\"seed\":7,\"kind\":\"$kind\"}" >/dev/null
	done
	echo "Notion emulator with a sample story workspace at $emu"
	NOTION_TOKEN=$token cli/notion-sync set-token --user "$user_id" >/dev/null
fi

echo
echo "== sync (every database of user $user_id) =="
cli/notion-sync sync --user "$user_id" | python3 -m json.tool
echo
echo "== what landed =="
psql -X -h "$stack" -U postgres -d notion_sync -c "
select 'notion_characters_sync' as sync_table, count(*) as rows from notion_characters_sync
union all select 'notion_worlds_sync', count(*) from notion_worlds_sync
union all select 'notion_stories_sync', count(*) from notion_stories_sync
union all select 'notion_chat_sessions_sync', count(*) from notion_chat_sessions_sync"
echo "PostgreSQL: psql \"$DATABASE_URL\"    stop everything: cli/quickstart.sh stop"
