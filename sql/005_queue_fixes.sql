-- 005_queue_fixes.sql - queued runs remember "full"; discovery is asked for
-- only for users with no registered database at all; pg_net's tables, which
-- hold the bearer secret until a request is sent, are closed to PUBLIC.

alter table notion_sync_runs add column full_walk boolean not null default false;

-- A user whose databases are all disabled has nothing to sync (the service
-- discovers only users with no registry row at all).
create or replace function sync_all_notion_databases(p_user_id uuid)
returns table (database_id uuid, database_name text, request_id bigint)
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    d record;
begin
    for d in select nd.database_id, nd.database_name from notion_databases nd
              where nd.user_id = p_user_id and nd.enabled order by nd.database_id loop
        database_id := d.database_id;
        database_name := d.database_name;
        request_id := sync_notion_database(p_user_id, d.database_id, d.database_name);
        return next;
    end loop;
    if not exists (select 1 from notion_databases nd where nd.user_id = p_user_id) then
        database_id := null;
        database_name := null;
        request_id := sync_notion_database(p_user_id, null, null);
        return next;
    end if;
end
$$;

-- pg_net grants its queue and responses to PUBLIC; the queue holds the
-- Authorization header until the worker sends it. Done here when pg_net is
-- already installed, and again by set_sync_api_secret().
create function notion_sync_close_pg_net() returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if to_regclass('net.http_request_queue') is not null then
        execute 'revoke all on net.http_request_queue from public';
    end if;
    if to_regclass('net._http_response') is not null then
        execute 'revoke all on net._http_response from public';
    end if;
end
$$;
revoke all on function notion_sync_close_pg_net() from public;
select notion_sync_close_pg_net();

create or replace function set_sync_api_secret(secret text) returns text
language plpgsql security definer
set search_path = pg_catalog, public, pg_temp
as $$
declare
    existing uuid;
begin
    if secret is null or length(btrim(secret)) < 16 then
        raise exception 'set_sync_api_secret: the secret must have at least 16 characters'
            using errcode = '22023';
    end if;
    perform notion_sync_close_pg_net();
    if to_regclass('vault.secrets') is not null then
        execute 'select id from vault.secrets where name = $1' into existing using 'notion_sync_api_secret';
        if existing is null then
            execute 'select vault.create_secret($1, $2, $3)'
                using btrim(secret), 'notion_sync_api_secret', 'bearer secret of the notion-sync endpoint';
        else
            execute 'select vault.update_secret($1, $2)' using existing, btrim(secret);
        end if;
        delete from notion_sync_settings where name = 'api_secret';
        return 'vault';
    end if;
    insert into notion_sync_settings (name, value) values ('api_secret', btrim(secret))
        on conflict (name) do update set value = excluded.value, updated_at = now();
    return 'notion_sync_settings';
end
$$;
