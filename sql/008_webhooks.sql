-- 008_webhooks.sql - Notion integration webhooks: subscriptions (the URL
-- key and the verification token Notion sent), the events received (one
-- row per event and routed user, deduplicated by Notion's event id), the
-- workspace of each OAuth user (to route a public integration's events),
-- and what monitoring reads: lag and backlog.
--
-- Events are signals: a worker reads the page or database they name from
-- Notion and writes what Notion shows now, so duplicates, retries and any
-- order of delivery converge. The rows here are the queue of that work and
-- its record.

-- The workspace an OAuth user's token belongs to (GET /v1/users/me,
-- bot.workspace_id), recorded by the first sync of that user.
alter table user_settings add column notion_workspace_id uuid;
create index user_settings_workspace_idx on user_settings (notion_workspace_id)
    where notion_workspace_id is not null;

create table notion_webhook_subscriptions (
    key                 text not null,        -- the URL's last segment; random, >= 128 bits
    kind                text not null,        -- 'user': one user's internal integration; 'oauth'
    user_id             uuid,                 -- kind 'user': whose integration
    verification_token  text,                 -- from Notion's handshake; NULL until then
    created_at          timestamptz not null default now(),
    verified_at         timestamptz,
    last_event_at       timestamptz,
    constraint notion_webhook_subscriptions_pkey primary key (key),
    constraint notion_webhook_subscriptions_kind_check check (
        (kind = 'user' and user_id is not null) or (kind = 'oauth' and user_id is null)),
    constraint notion_webhook_subscriptions_key_check check (key ~ '^[A-Za-z0-9_-]{22,64}$'),
    constraint notion_webhook_subscriptions_user_id_fkey foreign key (user_id)
        references user_settings (user_id) on delete cascade
);
comment on table notion_webhook_subscriptions is
    'Webhook URLs given to Notion. verification_token is a secret: owner and service only.';

create table notion_webhook_events (
    id                bigserial not null,
    subscription_key  text not null,
    event_id          uuid not null,          -- Notion's id: retries repeat it
    user_id           uuid,                   -- NULL: no user of that workspace
    type              text not null,
    entity_id         uuid,
    entity_type       text,
    parent_id         uuid,                   -- data.parent.id (a database for pages in one)
    parent_type       text,
    parent_data_source_id uuid,
    workspace_id      uuid,
    event_time        timestamptz,            -- the event's timestamp (when it happened)
    attempt_number    int,
    received_at       timestamptz not null default clock_timestamp(),
    not_before        timestamptz,            -- deferred (the database was busy) until
    status            text not null default 'received',
    outcome           text,                   -- what was done, or why not
    tries             int not null default 0,
    run_id            bigint,                 -- the run a database event queued
    processed_at      timestamptz,
    constraint notion_webhook_events_pkey primary key (id),
    constraint notion_webhook_events_status_check check (
        status in ('received', 'processed', 'ignored', 'failed')),
    constraint notion_webhook_events_subscription_fkey foreign key (subscription_key)
        references notion_webhook_subscriptions (key) on delete cascade
);
-- Deduplication: one row per event and user (an OAuth event may concern
-- several users of one workspace); NULL users compare as equal here.
create unique index notion_webhook_events_dedupe_idx
    on notion_webhook_events (subscription_key, event_id, coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid));
create index notion_webhook_events_pending_idx on notion_webhook_events (user_id, id)
    where status = 'received';
create index notion_webhook_events_received_idx on notion_webhook_events (received_at);

-- Row-level security as for the other per-user tables (004): the service
-- sees every row, the application role nothing of the subscriptions and
-- only its own events.
alter table notion_webhook_subscriptions enable row level security;
alter table notion_webhook_events enable row level security;
revoke all on notion_webhook_subscriptions, notion_webhook_events from public;
create policy notion_webhook_subscriptions_service on notion_webhook_subscriptions
    for all to notion_sync_service using (true) with check (true);
create policy notion_webhook_events_service on notion_webhook_events
    for all to notion_sync_service using (true) with check (true);
create policy notion_webhook_events_own_rows on notion_webhook_events for select to notion_sync_app
    using (user_id = (select notion_sync_current_user_id()));
grant select, insert, update, delete on notion_webhook_subscriptions, notion_webhook_events
    to notion_sync_service;
grant usage, select on sequence notion_webhook_events_id_seq to notion_sync_service;
grant select (id, event_id, user_id, type, entity_id, entity_type, event_time, received_at, status,
              outcome, processed_at)
    on notion_webhook_events to notion_sync_app;
grant update (notion_workspace_id) on user_settings to notion_sync_service;

-- Lag (received -> row written or run queued) and backlog over the last
-- hour, for people (psql) and for /metrics.
create view notion_webhook_stats as
select count(*) filter (where status = 'received') as backlog,
       count(*) filter (where status = 'processed') as processed,
       count(*) filter (where status = 'ignored') as ignored,
       count(*) filter (where status = 'failed') as failed,
       percentile_cont(0.5) within group (order by extract(epoch from processed_at - received_at))
           filter (where status = 'processed') as lag_p50_seconds,
       percentile_cont(0.95) within group (order by extract(epoch from processed_at - received_at))
           filter (where status = 'processed') as lag_p95_seconds,
       max(extract(epoch from processed_at - received_at))
           filter (where status = 'processed') as lag_max_seconds,
       extract(epoch from now() - min(received_at) filter (where status = 'received'))
           as oldest_pending_seconds
  from notion_webhook_events
 where received_at > now() - interval '1 hour' or status = 'received';
alter view notion_webhook_stats set (security_invoker = true);
grant select on notion_webhook_stats to notion_sync_app, notion_sync_service;

-- prune_notion_sync_history also forgets finished events older than keep
-- (pending ones stay: they are work not yet done).
create or replace function prune_notion_sync_history(keep interval default '30 days')
returns bigint
language plpgsql security definer volatile
set search_path = pg_catalog, public, pg_temp
as $$
declare
    n bigint;
    m bigint := 0;
    k bigint;
    e bigint;
begin
    delete from notion_sync_runs where coalesce(finished_at, started_at) < now() - keep
        and status not in ('queued', 'running');
    get diagnostics n = row_count;
    delete from notion_sync_requests where queued_at < now() - keep;
    get diagnostics k = row_count;
    delete from notion_webhook_events where received_at < now() - keep and status <> 'received';
    get diagnostics e = row_count;
    if to_regclass('cron.job_run_details') is not null then
        execute 'delete from cron.job_run_details where end_time < now() - $1' using keep;
        get diagnostics m = row_count;
    end if;
    return n + m + k + e;
end
$$;

insert into notion_sync_schema_migrations (version) values ('008_webhooks.sql')
    on conflict (version) do nothing;
