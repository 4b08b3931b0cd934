-- 002_completeness.sql - what a complete, incremental sync needs: a
-- watermark per data source, deletion and truncation counts in the run log,
-- and a generic sync table for databases that are none of the four kinds.

-- One row per (user, database, data source) walked. Under Notion-Version
-- 2022-06-28 the data source id is the database id.
create table notion_sync_state (
    user_id            uuid not null,
    database_id        uuid not null,
    data_source_id     uuid not null,
    watermark          timestamptz,   -- newest last_edited_time seen by a completed walk
    last_full_walk_at  timestamptz,   -- when a full walk of this source last completed
    last_walk_at       timestamptz,
    constraint notion_sync_state_pkey primary key (user_id, database_id, data_source_id)
);
comment on table notion_sync_state is
    'Incremental sync state: queries ask for last_edited_time on_or_after watermark - 2 minutes.';

alter table notion_sync_runs
    add column mode text,
    add constraint notion_sync_runs_mode_check check (mode in ('full', 'incremental')),
    add column deleted integer not null default 0,
    add column property_requests integer not null default 0;

-- Databases synced by id whose title is none of the four kinds: the same
-- columns as notion_stories_sync (title, description, properties, ...).
create table notion_other_sync (like notion_stories_sync including defaults including constraints);
alter table notion_other_sync add constraint notion_other_sync_pkey primary key (user_id, notion_page_id);
create index notion_other_sync_user_id_idx on notion_other_sync (user_id);
create index notion_other_sync_page_id_idx on notion_other_sync (notion_page_id);
create index notion_other_sync_title_idx on notion_other_sync (title);
create index notion_other_sync_database_idx on notion_other_sync (user_id, notion_database_id);

insert into notion_sync_schema_migrations (version) values ('002_completeness.sql')
    on conflict (version) do nothing;
