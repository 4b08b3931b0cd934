-- 005_deletion_proof.sql - what a run reports about rows it kept and about
-- the connections it opened (README "Complete and incremental").
--   orphaned:    rows a full walk kept because their data source is no
--                longer listed by the database (lost access is not
--                emptiness; `notion-sync prune-orphans` removes them).
--   connections: new connections libcurl opened to Notion, including its
--                own silent resend of a request on a dead keep-alive
--                connection (which `retries` does not count).

alter table notion_sync_runs
    add column orphaned integer not null default 0,
    add column connections integer not null default 0;

insert into notion_sync_schema_migrations (version) values ('005_deletion_proof.sql')
    on conflict (version) do nothing;
