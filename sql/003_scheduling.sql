-- 003_scheduling.sql - automatic sync from inside PostgreSQL (pg_cron +
-- pg_net), the queue behind asynchronous runs, monitoring views and the
-- pruning of old history. README.md, "Scheduling", describes the setup.
--
-- Works without pg_cron and without pg_net: the functions exist either way
-- and say what to install when called; the cron jobs are created only when
-- pg_cron is installed in this database (otherwise a NOTICE says how).

-- --- the run queue ----------------------------------------------------------
-- An asynchronous request records its runs as 'queued'; responder workers
-- claim them a user at a time. A run with no database_id discovers the
-- user's databases first. 'skipped': another sync of the same database was
-- running, which covers this one.
alter table notion_sync_runs drop constraint notion_sync_runs_status_check;
alter table notion_sync_runs
    add constraint notion_sync_runs_status_check
        check (status in ('queued', 'running', 'success', 'error', 'skipped')),
    alter column database_id drop not null,
    add column queued_at timestamptz,
    add column heartbeat_at timestamptz,
    add column worker text,
    add column full_walk boolean not null default false;   -- "full": true was asked
create index notion_sync_runs_queued_idx on notion_sync_runs (user_id, id) where status = 'queued';
create index notion_sync_runs_running_idx on notion_sync_runs (id) where status = 'running';

-- --- configuration the SQL functions need -----------------------------------
-- Readable by the owner only: application roles get nothing (see the
-- revokes below), and the secret never appears in a cron command.
create table notion_sync_settings (
    name        text not null,
    value       text not null,
    updated_at  timestamptz not null default now(),
    constraint notion_sync_settings_pkey primary key (name)
);
revoke all on notion_sync_settings from public;
comment on table notion_sync_settings is
    'api_url, and api_secret when supabase_vault is not installed. Owner-only.';

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'notion_sync_scheduler') then
        create role notion_sync_scheduler nologin;
    end if;
end
$$;
comment on role notion_sync_scheduler is
    'May call the sync_* and set_sync_* functions (grant it to the roles that schedule syncs).';

-- set_sync_api_url - where PostgreSQL reaches the sync endpoint. Stored in
-- notion_sync_settings and as this database's default of app.api_url, so
-- that new sessions see it with SHOW app.api_url.
create function set_sync_api_url(url text) returns text
language plpgsql security definer
set search_path = pg_catalog, public, pg_temp
as $$
declare
    clean text := rtrim(btrim(url), '/');
begin
    if clean is null or clean !~ '^https?://[^/\s?#]+(/[^\s?#]*)?$' then
        raise exception 'set_sync_api_url: % is not an http(s) URL such as https://sync.example.com', quote_nullable(url)
            using errcode = '22023';
    end if;
    insert into notion_sync_settings (name, value) values ('api_url', clean)
        on conflict (name) do update set value = excluded.value, updated_at = now();
    execute format('alter database %I set app.api_url = %L', current_database(), clean);
    perform set_config('app.api_url', clean, false);
    return clean;
end
$$;

-- set_sync_api_secret - the bearer secret the functions send. Kept in
-- Supabase Vault when the supabase_vault extension exists, else in the
-- owner-only settings table. Returns where it went, never the secret.
create function set_sync_api_secret(secret text) returns text
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

-- The endpoint URL and secret, or an error saying what to run. Internal.
create function notion_sync_endpoint(out url text, out secret text)
language plpgsql security definer stable
set search_path = pg_catalog, public, pg_temp
as $$
begin
    select value into url from notion_sync_settings where name = 'api_url';
    if url is null then
        raise exception 'notion-sync: no API URL is set'
            using hint = 'Run: SELECT set_sync_api_url(''https://your-api-domain.com'');',
                  errcode = '55000';
    end if;
    if to_regclass('vault.decrypted_secrets') is not null then
        execute 'select decrypted_secret from vault.decrypted_secrets where name = $1'
            into secret using 'notion_sync_api_secret';
    end if;
    if secret is null then
        select value into secret from notion_sync_settings where name = 'api_secret';
    end if;
    if secret is null then
        raise exception 'notion-sync: no API secret is set'
            using hint = 'Run: SELECT set_sync_api_secret(''<the NOTION_SYNC_SECRET of the responder>'');',
                  errcode = '55000';
    end if;
    if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null then
        raise exception 'notion-sync: pg_net is not installed in database %', current_database()
            using hint = 'Add pg_net to shared_preload_libraries, restart, then CREATE EXTENSION pg_net; '
                         'pg_net.database_name must name this database.',
                  errcode = '55000';
    end if;
    url := url || '/api/notion/sync-to-postgres';
end
$$;

-- sync_notion_database - queue one asynchronous sync request with pg_net.
-- The request leaves after the calling transaction commits; pg_net does not
-- retry, and the next scheduled run makes up for a lost request. Returns
-- pg_net's request id.
create function sync_notion_database(p_user_id uuid, p_database_id uuid, p_database_name text default null)
returns bigint
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    ep record;
    body jsonb;
    request_id bigint;
begin
    if p_user_id is null then
        raise exception 'sync_notion_database: user_id is required' using errcode = '22004';
    end if;
    select * into ep from notion_sync_endpoint();
    body := jsonb_strip_nulls(jsonb_build_object(
        'user_id', p_user_id, 'database_id', p_database_id,
        'database_name', nullif(p_database_name, ''), 'async', true));
    -- PL/pgSQL resolves net.http_post when this line first runs, after the
    -- check in notion_sync_endpoint(): the function exists without pg_net.
    request_id := net.http_post(
        url := ep.url,
        body := body,
        headers := jsonb_build_object('Content-Type', 'application/json',
                                      'Authorization', 'Bearer ' || ep.secret),
        timeout_milliseconds := 5000);
    return request_id;
end
$$;

-- sync_all_notion_databases - one request per enabled database of a user;
-- a user with nothing registered gets one request without database_id,
-- which makes the service discover the user's databases. A user whose
-- databases are all disabled gets none.
create function sync_all_notion_databases(p_user_id uuid)
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

-- sync_all_users_notion_databases - the same for every user with a token.
create function sync_all_users_notion_databases()
returns table (user_id uuid, database_id uuid, database_name text, request_id bigint)
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    u record;
begin
    for u in select s.user_id from user_settings s
              where coalesce(nullif(s.notion_access_token, ''), nullif(s.notion_token, '')) is not null
              order by s.user_id loop
        user_id := u.user_id;
        for database_id, database_name, request_id in
            select * from sync_all_notion_databases(u.user_id) loop
            return next;
        end loop;
    end loop;
end
$$;

-- prune_notion_sync_history - delete run rows and pg_cron run details older
-- than keep. Returns how many rows went.
create function prune_notion_sync_history(keep interval default '30 days')
returns bigint
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    n bigint;
    m bigint := 0;
begin
    delete from notion_sync_runs where coalesce(finished_at, started_at) < now() - keep
        and status not in ('queued', 'running');
    get diagnostics n = row_count;
    if to_regclass('cron.job_run_details') is not null then
        execute 'delete from cron.job_run_details where end_time < now() - $1' using keep;
        get diagnostics m = row_count;
    end if;
    return n + m;
end
$$;

-- schedule_notion_sync - (re)create the cron jobs: the sync every
-- `schedule` and the nightly pruning. Same-name jobs are replaced.
create function schedule_notion_sync(schedule text default '*/15 * * * *')
returns bigint
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    job bigint;
begin
    if to_regclass('cron.job') is null then
        raise exception 'notion-sync: pg_cron is not installed in database %', current_database()
            using hint = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this '
                         'database, restart, then CREATE EXTENSION pg_cron and SELECT schedule_notion_sync();',
                  errcode = '55000';
    end if;
    execute 'select cron.schedule($1, $2, $3)' into job
        using 'sync-notion-databases', schedule, 'SELECT sync_all_users_notion_databases()';
    -- pg_cron 1.4 runs in GMT; 03:17 GMT is off the busy hour marks.
    execute 'select cron.schedule($1, $2, $3)'
        using 'prune-notion-sync-history', '17 3 * * *', 'SELECT prune_notion_sync_history(''30 days'')';
    return job;
end
$$;

revoke all on function set_sync_api_url(text), set_sync_api_secret(text), notion_sync_endpoint(),
    sync_notion_database(uuid, uuid, text), sync_all_notion_databases(uuid),
    sync_all_users_notion_databases(), prune_notion_sync_history(interval),
    schedule_notion_sync(text) from public;
grant execute on function set_sync_api_url(text), set_sync_api_secret(text),
    sync_notion_database(uuid, uuid, text), sync_all_notion_databases(uuid),
    sync_all_users_notion_databases(), prune_notion_sync_history(interval),
    schedule_notion_sync(text) to notion_sync_scheduler;

do $$
begin
    if to_regclass('cron.job') is not null then
        perform schedule_notion_sync();
    else
        raise notice 'pg_cron is not installed in this database: the job sync-notion-databases was not '
                     'created. Install pg_cron (shared_preload_libraries, cron.database_name), '
                     'CREATE EXTENSION pg_cron, then SELECT schedule_notion_sync();';
    end if;
end
$$;

-- --- monitoring ---------------------------------------------------------------
-- Per user and database, over the last hour and the last day.
create view notion_sync_run_stats as
select w.label as time_window, r.user_id, r.database_id,
       max(r.database_name) as database_name,
       count(*) filter (where r.status in ('success', 'error')) as runs,
       count(*) filter (where r.status = 'success') as succeeded,
       count(*) filter (where r.status = 'error') as failed,
       round(count(*) filter (where r.status = 'success')::numeric
             / nullif(count(*) filter (where r.status in ('success', 'error')), 0), 4) as success_rate,
       round(count(*) filter (where r.status = 'error')::numeric
             / nullif(count(*) filter (where r.status in ('success', 'error')), 0), 4) as failure_rate,
       percentile_cont(0.5) within group (order by extract(epoch from r.finished_at - r.started_at))
           filter (where r.finished_at is not null) as duration_p50_s,
       percentile_cont(0.95) within group (order by extract(epoch from r.finished_at - r.started_at))
           filter (where r.finished_at is not null) as duration_p95_s,
       coalesce(sum(r.pages_seen), 0) as pages_processed,
       coalesce(sum(r.inserted + r.updated), 0) as rows_written,
       coalesce(sum(r.deleted), 0) as rows_deleted
  from (values ('1 hour', interval '1 hour'), ('1 day', interval '1 day')) as w(label, span)
  join notion_sync_runs r on r.started_at >= now() - w.span
 group by w.label, r.user_id, r.database_id;
comment on view notion_sync_run_stats is
    'Success/failure counts and rates, duration percentiles, pages processed per user and database, last hour/day.';

-- The most recent failed run of each user and database.
create view notion_sync_last_errors as
select distinct on (user_id, database_id)
       user_id, database_id, database_name, id as run_id, trigger, started_at, finished_at,
       error_message
  from notion_sync_runs
 where status = 'error'
 order by user_id, database_id, started_at desc, id desc;

insert into notion_sync_schema_migrations (version) values ('003_scheduling.sql')
    on conflict (version) do nothing;
