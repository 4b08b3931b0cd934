-- 001_sync_tables.sql - users' Notion tokens, the registry of their
-- databases, the four sync tables (Characters, Worlds, Stories, Chat
-- Sessions), and the run log.
-- Applied by `notion-sync migrate` (each file once, in a transaction), or
-- by any migration tool or plain `psql -f`, file after file in order: each
-- file records itself in notion_sync_schema_migrations. Every constraint
-- is named (with PostgreSQL's own default names, so that databases made by
-- earlier releases match), so a later migration can drop it by name.

-- Which of these files have been applied.
create table if not exists notion_sync_schema_migrations (
    version     text not null,
    applied_at  timestamptz not null default now(),
    constraint notion_sync_schema_migrations_pkey primary key (version)
);

create table user_settings (
    user_id              uuid not null,
    notion_access_token  text,            -- OAuth (public integration); preferred when set
    notion_token         text,            -- internal integration secret
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    constraint user_settings_pkey primary key (user_id)
);
comment on table user_settings is
    'Notion credentials per user. notion_access_token (OAuth) wins over notion_token.';

-- Which Notion databases each user syncs, under which kind.
create table notion_databases (
    user_id          uuid not null,
    database_id      uuid not null,
    database_name    text not null,      -- kind: Characters, Worlds, Stories, Chat Sessions
    notion_title     text,               -- the database title in Notion when last seen
    enabled          boolean not null default true,
    last_synced_at   timestamptz,
    last_status      text,
    last_run_id      bigint,
    created_at       timestamptz not null default now(),
    constraint notion_databases_pkey primary key (user_id, database_id),
    constraint notion_databases_user_id_fkey foreign key (user_id)
        references user_settings (user_id) on delete cascade
);
create index notion_databases_database_id_idx on notion_databases (database_id);

-- Columns shared by every sync table. Rows are written only when
-- content_hash changes, so updated_at is the time the content last changed.
create table notion_characters_sync (
    user_id                  uuid not null,
    notion_page_id           uuid not null,
    notion_database_id       uuid not null,
    notion_data_source_id    uuid,
    name                     text not null default '',
    description              text,
    properties               jsonb not null,
    content_hash             text not null,
    notion_created_time      timestamptz,
    notion_last_edited_time  timestamptz,
    created_at               timestamptz not null default now(),
    updated_at               timestamptz not null default now(),
    constraint notion_characters_sync_pkey primary key (user_id, notion_page_id)
);
create index notion_characters_sync_user_id_idx on notion_characters_sync (user_id);
create index notion_characters_sync_page_id_idx on notion_characters_sync (notion_page_id);
create index notion_characters_sync_name_idx on notion_characters_sync (name);
create index notion_characters_sync_database_idx on notion_characters_sync (user_id, notion_database_id);

create table notion_worlds_sync (like notion_characters_sync including defaults including constraints);
alter table notion_worlds_sync add constraint notion_worlds_sync_pkey primary key (user_id, notion_page_id);
create index notion_worlds_sync_user_id_idx on notion_worlds_sync (user_id);
create index notion_worlds_sync_page_id_idx on notion_worlds_sync (notion_page_id);
create index notion_worlds_sync_name_idx on notion_worlds_sync (name);
create index notion_worlds_sync_database_idx on notion_worlds_sync (user_id, notion_database_id);

create table notion_stories_sync (
    user_id                  uuid not null,
    notion_page_id           uuid not null,
    notion_database_id       uuid not null,
    notion_data_source_id    uuid,
    title                    text not null default '',
    description              text,
    properties               jsonb not null,
    content_hash             text not null,
    notion_created_time      timestamptz,
    notion_last_edited_time  timestamptz,
    created_at               timestamptz not null default now(),
    updated_at               timestamptz not null default now(),
    constraint notion_stories_sync_pkey primary key (user_id, notion_page_id)
);
create index notion_stories_sync_user_id_idx on notion_stories_sync (user_id);
create index notion_stories_sync_page_id_idx on notion_stories_sync (notion_page_id);
create index notion_stories_sync_title_idx on notion_stories_sync (title);
create index notion_stories_sync_database_idx on notion_stories_sync (user_id, notion_database_id);

create table notion_chat_sessions_sync (
    user_id                  uuid not null,
    notion_page_id           uuid not null,
    notion_database_id       uuid not null,
    notion_data_source_id    uuid,
    title                    text not null default '',
    transcript               text,
    message_count            integer,
    properties               jsonb not null,
    content_hash             text not null,
    notion_created_time      timestamptz,
    notion_last_edited_time  timestamptz,
    created_at               timestamptz not null default now(),
    updated_at               timestamptz not null default now(),
    constraint notion_chat_sessions_sync_pkey primary key (user_id, notion_page_id)
);
create index notion_chat_sessions_sync_user_id_idx on notion_chat_sessions_sync (user_id);
create index notion_chat_sessions_sync_page_id_idx on notion_chat_sessions_sync (notion_page_id);
create index notion_chat_sessions_sync_title_idx on notion_chat_sessions_sync (title);
create index notion_chat_sessions_sync_database_idx on notion_chat_sessions_sync (user_id, notion_database_id);

-- One row per database sync and its statistics (README.md, "The tables").
create table notion_sync_runs (
    id                       bigserial not null,
    user_id                  uuid not null,
    database_id              uuid not null,
    database_name            text,
    trigger                  text not null default 'http',   -- http, cli, cron, pg_net
    status                   text not null default 'running',
    constraint notion_sync_runs_status_check check (status in ('running', 'success', 'error')),
    started_at               timestamptz not null default now(),
    finished_at              timestamptz,
    pages_seen               integer not null default 0,
    inserted                 integer not null default 0,
    updated                  integer not null default 0,
    unchanged                integer not null default 0,
    page_errors              integer not null default 0,
    notion_requests          integer not null default 0,
    retries                  integer not null default 0,
    rate_limit_wait_seconds  double precision not null default 0,
    pacing_wait_seconds      double precision not null default 0,
    error_message            text,
    constraint notion_sync_runs_pkey primary key (id)
);
create index notion_sync_runs_user_db_idx on notion_sync_runs (user_id, database_id, started_at desc);
create index notion_sync_runs_started_idx on notion_sync_runs (started_at);

insert into notion_sync_schema_migrations (version) values ('001_sync_tables.sql')
    on conflict (version) do nothing;
