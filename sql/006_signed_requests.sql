-- 006_signed_requests.sql - database-triggered requests carry a short-lived
-- signature instead of the long-lived bearer secret, pg_net's own grants
-- are left as pg_net made them, and schedulers can see whether their
-- requests arrived (README "Scheduling").
--
-- pg_net keeps every queued request, headers included, in
-- net.http_request_queue, which pg_net grants to PUBLIC so that every role
-- may call net.http_post (Supabase database webhooks, Edge Function
-- triggers, applications). Earlier releases revoked that grant to hide the
-- bearer secret, which broke those neighbours. Now the secret never enters
-- the queue: each request is signed with
--     X-Notion-Sync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t || '.' || body)>
-- over the exact body pg_net sends (convert_to(body::text, 'UTF8')). The
-- responder accepts a signature no older than 5 minutes, once.

create extension if not exists pgcrypto;

-- No longer needed; earlier releases revoked pg_net's grants with it. The
-- README's upgrade note gives the GRANT statements that restore them.
drop function if exists notion_sync_close_pg_net();

-- set_sync_api_secret - the secret that signs the requests (the
-- responder's NOTION_SYNC_SECRET). Kept in Supabase Vault when the
-- supabase_vault extension exists, else in the owner-only settings table.
-- Returns where it went, never the secret.
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
    if to_regclass('vault.secrets') is not null then
        execute 'select id from vault.secrets where name = $1' into existing using 'notion_sync_api_secret';
        if existing is null then
            execute 'select vault.create_secret($1, $2, $3)'
                using btrim(secret), 'notion_sync_api_secret', 'secret of the notion-sync endpoint';
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

-- notion_sync_signature - the X-Notion-Sync-Signature value for body, made
-- now with secret. pgcrypto may live in another schema (Supabase puts it in
-- "extensions"), so hmac() is called through the schema it is in. Internal.
create function notion_sync_signature(body text, secret text) returns text
language plpgsql security definer volatile
set search_path = pg_catalog, pg_temp
as $$
declare
    crypto_schema name;
    t bigint := floor(extract(epoch from clock_timestamp()))::bigint;
    mac bytea;
begin
    select n.nspname into crypto_schema
      from pg_extension e join pg_namespace n on n.oid = e.extnamespace
     where e.extname = 'pgcrypto';
    if crypto_schema is null then
        raise exception 'notion-sync: pgcrypto is not installed in database %', current_database()
            using hint = 'CREATE EXTENSION pgcrypto;', errcode = '55000';
    end if;
    execute format('select %I.hmac($1, $2, %L)', crypto_schema, 'sha256')
        into mac using convert_to(t::text || '.' || body, 'UTF8'), convert_to(secret, 'UTF8');
    return 't=' || t::text || ',v1=' || encode(mac, 'hex');
end
$$;

-- The requests this project queued in pg_net, to find their answers in
-- net._http_response (which pg_net keeps for pg_net.ttl, 6 hours by
-- default). Pruned with the run history.
create table notion_sync_requests (
    request_id   bigint not null,
    user_id      uuid not null,
    database_id  uuid,
    queued_at    timestamptz not null default now(),
    constraint notion_sync_requests_pkey primary key (request_id)
);
create index notion_sync_requests_queued_idx on notion_sync_requests (queued_at);
revoke all on notion_sync_requests from public;
comment on table notion_sync_requests is
    'pg_net request ids of the sync requests the SQL functions queued (see notion_sync_deliveries()).';

-- sync_notion_database - queue one asynchronous, signed sync request with
-- pg_net. The request leaves after the calling transaction commits; pg_net
-- does not retry, and the next scheduled run makes up for a lost request.
-- Returns pg_net's request id.
create or replace function sync_notion_database(p_user_id uuid, p_database_id uuid,
                                                p_database_name text default null)
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
    -- pg_net sends convert_to(body::text, 'UTF8'): sign that very text.
    request_id := net.http_post(
        url := ep.url,
        body := body,
        headers := jsonb_build_object('Content-Type', 'application/json',
                                      'X-Notion-Sync-Signature',
                                      notion_sync_signature(body::text, ep.secret)),
        timeout_milliseconds := 5000);
    insert into notion_sync_requests (request_id, user_id, database_id)
        values (request_id, p_user_id, p_database_id);
    return request_id;
end
$$;

-- notion_sync_deliveries - whether this project's requests arrived: one row
-- per request queued within `since`, with pg_net's answer once it has one
-- (status_code NULL and error_msg set when it could not connect; timed_out
-- true after the 5 s timeout). Never shows headers or bodies.
create function notion_sync_deliveries(since interval default '1 day')
returns table (request_id bigint, queued_at timestamptz, user_id uuid, database_id uuid,
               answered_at timestamptz, status_code integer, timed_out boolean, error_msg text)
language plpgsql security definer stable
set search_path = pg_catalog, public, pg_temp
as $$
begin
    if to_regclass('net._http_response') is null then
        return query select r.request_id, r.queued_at, r.user_id, r.database_id,
                            null::timestamptz, null::integer, null::boolean, null::text
                       from notion_sync_requests r
                      where r.queued_at >= now() - since
                      order by r.request_id;
        return;
    end if;
    return query execute
        'select r.request_id, r.queued_at, r.user_id, r.database_id,
                x.created, x.status_code, x.timed_out, x.error_msg
           from notion_sync_requests r
           left join net._http_response x on x.id = r.request_id
          where r.queued_at >= now() - $1
          order by r.request_id'
        using since;
end
$$;

-- prune_notion_sync_history - delete run rows, request ids and pg_cron run
-- details older than keep. Returns how many rows went.
create or replace function prune_notion_sync_history(keep interval default '30 days')
returns bigint
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    n bigint;
    m bigint := 0;
    k bigint;
begin
    delete from notion_sync_runs where coalesce(finished_at, started_at) < now() - keep
        and status not in ('queued', 'running');
    get diagnostics n = row_count;
    delete from notion_sync_requests where queued_at < now() - keep;
    get diagnostics k = row_count;
    if to_regclass('cron.job_run_details') is not null then
        execute 'delete from cron.job_run_details where end_time < now() - $1' using keep;
        get diagnostics m = row_count;
    end if;
    return n + m + k;
end
$$;

-- Signatures the responder has accepted, so that a replayed request is
-- answered without doing anything again. Rows older than the 5-minute
-- window are deleted as new ones arrive.
create table notion_sync_seen_signatures (
    signature  text not null,
    signed_at  timestamptz not null,
    constraint notion_sync_seen_signatures_pkey primary key (signature)
);
create index notion_sync_seen_signatures_signed_idx on notion_sync_seen_signatures (signed_at);
revoke all on notion_sync_seen_signatures from public;
grant select, insert, delete on notion_sync_seen_signatures to notion_sync_service;

revoke all on function notion_sync_signature(text, text), notion_sync_deliveries(interval)
    from public;
grant execute on function notion_sync_deliveries(interval) to notion_sync_scheduler;

insert into notion_sync_schema_migrations (version) values ('006_signed_requests.sql')
    on conflict (version) do nothing;
