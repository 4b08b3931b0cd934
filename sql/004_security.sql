-- 004_security.sql - who may see and change what.
--
-- Two roles (NOLOGIN; grant them to login roles):
--   notion_sync_service  the responder and the CLI: every user's rows, the
--                        tokens, the queue. Nothing else (no DDL, no other
--                        tables, no BYPASSRLS).
--   notion_sync_app      an application acting for one user: only rows whose
--                        user_id is that user (auth.uid() on Supabase,
--                        otherwise the `sub` of the PostgREST-style
--                        request.jwt.claims setting). Never reads tokens.
-- The owner (who runs the migrations) keeps full rights.

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'notion_sync_service') then
        create role notion_sync_service nologin;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'notion_sync_app') then
        create role notion_sync_app nologin;
    end if;
end
$$;

-- The requesting user: auth.uid() when it exists (Supabase), else the
-- `sub` claim of request.jwt.claims (PostgREST), else the older
-- request.jwt.claim.sub. NULL when there is none or it is not a UUID, so
-- that a missing identity sees nothing rather than failing.
create function notion_sync_current_user_id() returns uuid
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
    sub text;
    claims text;
begin
    if to_regprocedure('auth.uid()') is not null then
        execute 'select auth.uid()::text' into sub;
    else
        claims := nullif(current_setting('request.jwt.claims', true), '');
        if claims is not null then
            begin
                sub := claims::jsonb ->> 'sub';
            exception when others then
                sub := null;
            end;
        end if;
        if sub is null then
            sub := nullif(current_setting('request.jwt.claim.sub', true), '');
        end if;
    end if;
    if sub is null or sub !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' then
        return null;
    end if;
    return sub::uuid;
end
$$;
grant execute on function notion_sync_current_user_id() to notion_sync_app, notion_sync_service;

-- Row-level security on every table that holds a user's rows. The owner
-- is not subject to it (no FORCE); the two roles are.
do $$
declare
    t text;
begin
    foreach t in array array['notion_characters_sync', 'notion_worlds_sync', 'notion_stories_sync',
                             'notion_chat_sessions_sync', 'notion_other_sync', 'notion_databases',
                             'notion_sync_runs', 'notion_sync_state', 'user_settings'] loop
        execute format('alter table %I enable row level security', t);
        execute format('revoke all on %I from public', t);
        -- (select ...) makes PostgreSQL evaluate the identity once per query.
        execute format('create policy %I on %I for all to notion_sync_app'
                       ' using (user_id = (select notion_sync_current_user_id()))'
                       ' with check (user_id = (select notion_sync_current_user_id()))',
                       t || '_own_rows', t);
        execute format('create policy %I on %I for all to notion_sync_service using (true) with check (true)',
                       t || '_service', t);
    end loop;
end
$$;

-- The service: everything the sync, the queue and set-token do.
grant select, insert, update, delete on notion_characters_sync, notion_worlds_sync, notion_stories_sync,
    notion_chat_sessions_sync, notion_other_sync, notion_databases, notion_sync_runs,
    notion_sync_state, user_settings to notion_sync_service;
grant usage, select on sequence notion_sync_runs_id_seq to notion_sync_service;
grant select on notion_sync_schema_migrations to notion_sync_service;

-- The application: its own synced rows and registry; its runs and state to
-- read; its own settings row without the tokens (it may write a token, never
-- read one back).
grant select, insert, update, delete on notion_characters_sync, notion_worlds_sync, notion_stories_sync,
    notion_chat_sessions_sync, notion_other_sync, notion_databases to notion_sync_app;
grant select on notion_sync_runs, notion_sync_state to notion_sync_app;
grant select (user_id, created_at, updated_at),
      insert (user_id, notion_access_token, notion_token),
      update (notion_access_token, notion_token, updated_at)
   on user_settings to notion_sync_app;

-- The monitoring views run as the caller, so RLS applies through them.
alter view notion_sync_run_stats set (security_invoker = true);
alter view notion_sync_last_errors set (security_invoker = true);
grant select on notion_sync_run_stats, notion_sync_last_errors to notion_sync_app, notion_sync_service;

-- notion_sync_settings (003) is granted to no one: it stays owner-only.

insert into notion_sync_schema_migrations (version) values ('004_security.sql')
    on conflict (version) do nothing;
