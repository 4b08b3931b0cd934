-- 007_one_definition.sql - what the C code and the SQL functions must agree
-- on, defined once: the advisory-lock keys of a sync and of a queue worker,
-- and which token of a user counts (the OAuth one when set).

-- The session advisory lock held while (user, database) is synced.
create or replace function notion_sync_lock_key(p_user_id uuid, p_database_id uuid)
returns bigint language sql immutable parallel safe
as $$ select hashtextextended('notion-sync:' || p_user_id::text || ':' || p_database_id::text, 0) $$;

-- The session advisory lock a queue worker holds on a user while it runs
-- that user's queued runs (one token, one pace).
create or replace function notion_sync_user_lock_key(p_user_id uuid)
returns bigint language sql immutable parallel safe
as $$ select hashtextextended('notion-sync:user:' || p_user_id::text, 0) $$;

-- The token a user's syncs use: notion_access_token (OAuth) when set, else
-- notion_token (internal integration); NULL when neither is.
create or replace function notion_sync_token(u user_settings)
returns text language sql stable parallel safe
as $$ select coalesce(nullif(u.notion_access_token, ''), nullif(u.notion_token, '')) $$;

revoke all on function notion_sync_lock_key(uuid, uuid), notion_sync_user_lock_key(uuid),
    notion_sync_token(user_settings) from public;
grant execute on function notion_sync_lock_key(uuid, uuid), notion_sync_user_lock_key(uuid),
    notion_sync_token(user_settings) to notion_sync_service;

-- sync_all_users_notion_databases - one request per enabled database of
-- every user with a token (see 003_scheduling.sql).
create or replace function sync_all_users_notion_databases()
returns table (user_id uuid, database_id uuid, database_name text, request_id bigint)
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    u record;
begin
    for u in select s.user_id from user_settings s
              where notion_sync_token(s) is not null
              order by s.user_id loop
        user_id := u.user_id;
        for database_id, database_name, request_id in
            select * from sync_all_notion_databases(u.user_id) loop
            return next;
        end loop;
    end loop;
end
$$;

insert into notion_sync_schema_migrations (version) values ('007_one_definition.sql')
    on conflict (version) do nothing;
