#!/bin/bash
# quickstart.sh - the README's first command: the whole stack on this
# machine, then one sync through it.
#
#   cli/quickstart.sh          start the stack and sync (stops it if it is running)
#   cli/quickstart.sh start    start (or restart) and sync
#   cli/quickstart.sh stop     stop everything it started
#
# Installs what is missing (Debian packages, and the real pg_net built from
# ../shared/vendor/pg_net when that tree is there: cli/build-pg-net.sh), builds,
# and starts in .stack/ (git-ignored; nothing system-wide is started):
#   - PostgreSQL 15 with pg_cron on a private unix socket, migrations applied
#     (so the 15-minute job exists), the responder connecting as a login
#     role that has only notion_sync_service's rights; with pg_net when it is
#     installed, configured so that the job's requests reach the stack
#     (pg_net's libcurl cannot verify the self-signed certificate, so it
#     calls a plain-HTTP loopback server of nginx, $NOTION_SYNC_PG_NET_PORT,
#     default 8081, with the same locations);
#   - the bundled Notion emulator loaded with a sample story workspace, or
#     real Notion when NOTION_TOKEN is set (the databases titled Characters,
#     Worlds, Stories and Chat Sessions shared with that integration);
#   - the FastCGI responder under spawn-fcgi on a unix socket;
#   - nginx on https://localhost:$NOTION_SYNC_HTTPS_PORT (default 8443) with a
#     freshly made self-signed certificate, TLS 1.2/1.3 only, and plain HTTP
#     on $NOTION_SYNC_HTTP_PORT (default 8080) redirecting to it;
# then POSTs one sync to https://localhost:8443/api/notion/sync-to-postgres and
# prints the JSON answer and what landed in each sync table.
# Works as root and as a normal user (apt-get through sudo).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
stack="$top/.stack"
pgbin=/usr/lib/postgresql/15/bin
user_id=00000000-0000-4000-8000-000000000001
https_port=${NOTION_SYNC_HTTPS_PORT:-8443}
http_port=${NOTION_SYNC_HTTP_PORT:-8080}
pg_net_port=${NOTION_SYNC_PG_NET_PORT:-8081}

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running() { alive "$stack/nginx.pid" || alive "$stack/responder.pid" || alive "$stack/emulator.pid" ||
	[ -f "$stack/pg/postmaster.pid" ]; }

stop() {
	local f
	for f in nginx responder emulator; do
		if alive "$stack/$f.pid"; then
			kill "$(cat "$stack/$f.pid")" 2>/dev/null || true
			for _ in $(seq 50); do alive "$stack/$f.pid" || break; sleep 0.1; done
		fi
		rm -f "$stack/$f.pid"
	done
	if [ -f "$stack/pg/postmaster.pid" ]; then
		as_pg "$pgbin/pg_ctl" -D "$stack/pg" -m fast -w stop >/dev/null || true
	fi
	rm -f "$stack/run/fcgi.sock"
	echo "notion-sync stack stopped"
}

case "${1:-}" in
stop)
	stop
	exit 0
	;;
start) running && stop >/dev/null ;;
"")
	if running; then
		stop
		exit 0
	fi
	;;
*)
	echo "usage: $0 [start|stop]" >&2
	exit 2
	;;
esac

"$top/cli/install-deps.sh"
# pg_net is optional: without ../shared/vendor/pg_net (and not installed) the
# stack runs without it, and the job's requests fail saying so.
"$top/cli/build-pg-net.sh"
pg_net=""
if [ -f /usr/lib/postgresql/15/lib/pg_net.so ] && [ -f /usr/share/postgresql/15/extension/pg_net.control ]; then
	pg_net=yes
fi
cd "$top"
if [ ! -x cli/notion-sync ] || [ ! -x fcgi/notion-sync-fcgi ]; then
	[ -x configure ] || ./autogen.sh >/dev/null
	[ -f Makefile ] || ./configure -q
	make -j2 >/dev/null
fi
# Start from a clean slate so that a failed earlier run leaves nothing behind.
trap 'echo "the stack failed to start; see $stack/*.log" >&2; stop >/dev/null 2>&1 || true' ERR
mkdir -p "$stack/run" "$stack/nginx"
chmod 755 "$stack"
[ "$(id -u)" -eq 0 ] && chown postgres: "$stack"

# --- PostgreSQL with pg_cron (and pg_net) ---------------------------------
if [ ! -d "$stack/pg" ]; then
	as_pg "$pgbin/initdb" -A trust --no-sync -E UTF8 --locale=C -U postgres -D "$stack/pg" >/dev/null
fi
# The stack's settings, written afresh at every start into a file included
# last (so they win, also over an older quickstart's lines).
if ! grep -q "^include_if_exists = 'quickstart.conf'" "$stack/pg/postgresql.conf"; then
	echo "include_if_exists = 'quickstart.conf'" >>"$stack/pg/postgresql.conf"
fi
cat >"$stack/pg/quickstart.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$stack'
fsync = off
shared_preload_libraries = 'pg_cron${pg_net:+,pg_net}'
cron.database_name = 'notion_sync'
cron.host = '$stack'
CONF
if [ -n "$pg_net" ]; then
	echo "pg_net.database_name = 'notion_sync'" >>"$stack/pg/quickstart.conf"
fi
chmod 644 "$stack/pg/quickstart.conf"
as_pg "$pgbin/pg_ctl" -D "$stack/pg" -l "$stack/postgres.log" -w start >/dev/null
admin="host=$stack dbname=notion_sync user=postgres"
# The emulator's sample workspace is made afresh each time (new ids), so
# its database is too; with real Notion the data is kept between runs.
if [ -z "${NOTION_TOKEN:-}" ]; then
	psql -X -q -h "$stack" -U postgres -d postgres -c "drop database if exists notion_sync with (force)"
fi
psql -X -q -h "$stack" -U postgres -d postgres -tc "select 1 from pg_database where datname='notion_sync'" |
	grep -q 1 || psql -X -q -h "$stack" -U postgres -d postgres -c "create database notion_sync"
PGOPTIONS="-c client_min_messages=warning" psql -X -q "$admin" -c "create extension if not exists pg_cron"
# As the README says: pg_cron and pg_net before the migrations.
if [ -n "$pg_net" ]; then
	PGOPTIONS="-c client_min_messages=warning" psql -X -q "$admin" -c "create extension if not exists pg_net"
fi
DATABASE_URL=$admin cli/notion-sync migrate --sql-dir "$top/sql" 2>&1 | grep -v 'NOTICE' || true
# The responder's own login role: notion_sync_service's rights and no more.
psql -X -q "$admin" -c "do \$\$ begin
	if not exists (select 1 from pg_roles where rolname = 'notion_sync_responder') then
		create role notion_sync_responder login in role notion_sync_service;
	end if; end \$\$"
export DATABASE_URL="host=$stack dbname=notion_sync user=notion_sync_responder"

# --- Notion: the emulator, or the real API ----------------------------------
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

# --- the responder under spawn-fcgi ----------------------------------------
secret_file="$stack/secret"
[ -s "$secret_file" ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file")
export NOTION_SYNC_SECRET
NOTION_SYNC_SECRET=$(cat "$secret_file")
rm -f "$stack/run/fcgi.sock"
if [ "$(id -u)" -eq 0 ]; then
	# Root: the responder drops to nobody; nginx's workers (www-data) may
	# use the socket, nobody else.
	spawn-fcgi -n -s "$stack/run/fcgi.sock" -M 0660 -U nobody -G www-data -u nobody -g nogroup \
		-- "$top/fcgi/notion-sync-fcgi" >>"$stack/responder.log" 2>&1 &
	nginx_user="user www-data;"
else
	spawn-fcgi -n -s "$stack/run/fcgi.sock" -M 0600 \
		-- "$top/fcgi/notion-sync-fcgi" >>"$stack/responder.log" 2>&1 &
	nginx_user=""
fi
echo $! >"$stack/responder.pid"
for _ in $(seq 100); do [ -S "$stack/run/fcgi.sock" ] && break; sleep 0.1; done

# --- nginx with a fresh self-signed certificate ------------------------------
pg_net_server=""
if [ -n "$pg_net" ]; then
	# For pg_net only (loopback, plain HTTP: its libcurl trusts only the
	# system's CA store, not this self-signed certificate).
	pg_net_server="    server {
        listen 127.0.0.1:$pg_net_port;
        server_name localhost;
        include $top/nginx/notion-sync-locations.conf;
    }
"
fi
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$stack/nginx/key.pem" -out "$stack/nginx/cert.pem" 2>/dev/null
chmod 600 "$stack/nginx/key.pem"
# The locations snippet includes fastcgi_params relative to the configuration.
cp /etc/nginx/fastcgi_params "$stack/nginx/fastcgi_params"
cat >"$stack/nginx/nginx.conf" <<CONF
$nginx_user
worker_processes 1;
pid $stack/nginx.pid;
error_log $stack/nginx-error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    client_body_temp_path $stack/nginx/body;
    fastcgi_temp_path $stack/nginx/fastcgi;
    proxy_temp_path $stack/nginx/proxy;
    uwsgi_temp_path $stack/nginx/uwsgi;
    scgi_temp_path $stack/nginx/scgi;
    # At http level: the fix Debian's stock nginx.conf needs (it enables TLS 1.0/1.1).
    ssl_protocols TLSv1.2 TLSv1.3;
    server_tokens off;
    log_format notion_sync '\$remote_addr [\$time_local] "\$request_method \$uri \$server_protocol" '
                           '\$status \$body_bytes_sent \$request_time "\$http_user_agent"';
    access_log $stack/nginx-access.log notion_sync;
    upstream notion_sync_responder { server unix:$stack/run/fcgi.sock; }
    limit_req_zone \$binary_remote_addr zone=notion_sync:1m rate=10r/s;
    limit_req_zone \$binary_remote_addr zone=notion_sync_webhooks:1m rate=50r/s;
    server {
        listen 127.0.0.1:$http_port;
        server_name localhost;
        return 301 https://localhost:$https_port\$request_uri;
    }
    server {
        listen 127.0.0.1:$https_port ssl http2;
        server_name localhost;
        ssl_certificate     $stack/nginx/cert.pem;
        ssl_certificate_key $stack/nginx/key.pem;
        include $top/nginx/notion-sync-locations.conf;
    }
$pg_net_server}
CONF
nginx -c "$stack/nginx/nginx.conf" -p "$stack/nginx" -e "$stack/nginx-error.log"
for _ in $(seq 100); do alive "$stack/nginx.pid" && break; sleep 0.1; done
# Scheduling: where pg_net sends the job's requests, and the secret.
if [ -n "$pg_net" ]; then
	# (The secret goes through stdin, never argv; it is hex.)
	psql -X -q -At -v ON_ERROR_STOP=1 "$admin" >/dev/null <<SQL
select set_sync_api_url('http://127.0.0.1:$pg_net_port');
select set_sync_api_secret('$NOTION_SYNC_SECRET');
SQL
	scheduling="pg_net sends the 15-minute job to http://127.0.0.1:$pg_net_port
            (now: SELECT * FROM sync_all_users_notion_databases();)"
else
	scheduling="pg_net is not installed (cli/build-pg-net.sh builds it from ../shared/vendor/pg_net)"
fi
trap - ERR

# --- one sync through HTTPS ---------------------------------------------------
url="https://localhost:$https_port/api/notion/sync-to-postgres"
echo
echo "== POST $url (every database of user $user_id) =="
printf 'Authorization: Bearer %s\n' "$NOTION_SYNC_SECRET" >"$stack/run/auth-header"
chmod 600 "$stack/run/auth-header"
curl -sS --cacert "$stack/nginx/cert.pem" -X POST -H @"$stack/run/auth-header" \
	-H 'Content-Type: application/json' -d "{\"user_id\":\"$user_id\"}" "$url" | python3 -m json.tool
echo
echo "== what landed =="
psql -X "$admin" -c "
select 'notion_characters_sync' as sync_table, count(*) as rows from notion_characters_sync
union all select 'notion_worlds_sync', count(*) from notion_worlds_sync
union all select 'notion_stories_sync', count(*) from notion_stories_sync
union all select 'notion_chat_sessions_sync', count(*) from notion_chat_sessions_sync
union all select 'notion_other_sync', count(*) from notion_other_sync"
cat <<EOF
endpoint:   $url   (certificate: $stack/nginx/cert.pem, bearer secret: $secret_file)
PostgreSQL: psql "$admin"
logs:       $stack/responder.log  $stack/nginx-access.log  $stack/postgres.log
scheduling: $scheduling
stop:       cli/quickstart.sh stop   (or run cli/quickstart.sh again)
EOF
