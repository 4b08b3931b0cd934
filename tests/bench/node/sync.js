#!/usr/bin/env node
// sync.js - a plain Node.js sync of one Notion database into
// notion_characters_sync, written from the design guide with the official
// @notionhq/client and pg: the benchmark's reference for the C sync.
//
//   node sync.js --notion-url URL --token TOKEN --database ID --user UUID
//                [--pg CONNINFO] [--full]
//
// One sync: GET the database for its data sources, query every page of each
// (Notion-Version 2025-09-03, page_size 100, created_time ascending, cursor
// after cursor), map each page to the table's columns, hash its content
// (md5 of its properties + last_edited_time), skip the pages whose hash is
// the one stored, and upsert the others 100 rows per INSERT ... ON CONFLICT.
// The guide has no incremental mode: every sync is a full walk, and --full
// is accepted for the same command line as the C CLI.
//
// PostgreSQL: --pg (a URI or libpq key=value conninfo), else DATABASE_URL,
// else the standard PG* variables. The token may also come from
// NOTION_TOKEN. Prints one line of JSON on stdout; exits 1 with a message on
// stderr on failure (never with the token).
"use strict";

const crypto = require("node:crypto");
const { parseArgs } = require("node:util");
const { performance } = require("node:perf_hooks");
const { Client } = require("@notionhq/client");
const pg = require("pg");

const NOTION_VERSION = "2025-09-03";
const PAGE_SIZE = 100;
const BATCH_ROWS = 100;
const TABLE = "notion_characters_sync";
const DESCRIPTION_PROPERTIES = ["Description", "Bio", "Backstory"];
const COLUMNS = [
  "user_id", "notion_page_id", "notion_database_id", "notion_data_source_id", "name",
  "description", "properties", "content_hash", "notion_created_time", "notion_last_edited_time",
];

let secret = null; // scrubbed from every message we print

function fail(message) {
  let text = String(message);
  if (secret) text = text.split(secret).join("<token>");
  process.stderr.write(`sync.js: ${text}\n`);
  process.exit(1);
}

function parseCommandLine() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        "notion-url": { type: "string" },
        token: { type: "string" },
        database: { type: "string" },
        user: { type: "string" },
        pg: { type: "string" },
        full: { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    fail(`${e.message}\nusage: node sync.js --notion-url URL --token TOKEN --database ID ` +
         "--user UUID [--pg CONNINFO] [--full]");
  }
  values.token = values.token || process.env.NOTION_TOKEN;
  for (const name of ["notion-url", "token", "database", "user"]) {
    if (!values[name]) fail(`--${name} is required`);
  }
  return values;
}

// libpq's key=value conninfo ("host=/tmp/x dbname=y user=z", values may be
// 'quoted'), which pg does not parse itself, as a pg.Client config.
function parseConninfo(conninfo) {
  if (/^postgres(ql)?:\/\//.test(conninfo)) return { connectionString: conninfo };
  const names = { dbname: "database", host: "host", port: "port", user: "user",
                  password: "password", application_name: "application_name" };
  const config = {};
  const re = /\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|\S*)/gy;
  let m;
  let end = 0;
  while ((m = re.exec(conninfo)) !== null) {
    const value = m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : m[2];
    if (!(m[1] in names)) fail(`conninfo: unsupported key ${m[1]}`);
    config[names[m[1]]] = m[1] === "port" ? Number(value) : value;
    end = re.lastIndex;
  }
  if (conninfo.slice(end).trim()) fail("conninfo: cannot parse it");
  return config;
}

function pgConfig(args) {
  if (args.pg) return parseConninfo(args.pg);
  if (process.env.DATABASE_URL) return parseConninfo(process.env.DATABASE_URL);
  return {}; // pg reads PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD
}

function plainText(value) {
  const items = value && value[value.type];
  if (!Array.isArray(items)) return "";
  return items.map((t) => t.plain_text ?? t.text?.content ?? "").join("");
}

// Characters: name is the title's text; description the first of
// Description/Bio/Backstory that has text ("" when they are all empty, null
// when the page has none of them).
function mapPage(page) {
  const properties = page.properties;
  const title = Object.values(properties).find((v) => v && v.type === "title");
  let description = null;
  for (const name of DESCRIPTION_PROPERTIES) {
    const value = properties[name];
    if (!value || value.type !== "rich_text") continue;
    const text = plainText(value);
    if (text) {
      description = text;
      break;
    }
    if (description === null) description = "";
  }
  return { name: plainText(title), description };
}

// Notion re-signs the URL of every Notion-hosted file on each response, so
// the hash leaves out the signature (the query string) and expiry_time.
function stableFile(item) {
  if (item.type !== "file" || !item.file) return item;
  return { ...item, file: { url: String(item.file.url).split("?")[0] } };
}

function contentHash(page) {
  const stable = {};
  for (const [name, value] of Object.entries(page.properties)) {
    stable[name] = value && value.type === "files" && Array.isArray(value.files)
      ? { ...value, files: value.files.map(stableFile) } : value;
  }
  return crypto.createHash("md5")
    .update(JSON.stringify(stable) + page.last_edited_time).digest("hex");
}

const UPSERT_TAIL =
  ` on conflict (user_id, notion_page_id) do update set` +
  ` notion_database_id = excluded.notion_database_id,` +
  ` notion_data_source_id = excluded.notion_data_source_id,` +
  ` name = excluded.name, description = excluded.description,` +
  ` properties = excluded.properties, content_hash = excluded.content_hash,` +
  ` notion_created_time = excluded.notion_created_time,` +
  ` notion_last_edited_time = excluded.notion_last_edited_time, updated_at = now()` +
  ` where ${TABLE}.content_hash is distinct from excluded.content_hash`;

async function upsert(db, rows) {
  const params = [];
  const tuples = rows.map((row) => {
    const marks = row.map((value) => {
      params.push(value);
      return `$${params.length}`;
    });
    marks[6] += "::jsonb";
    return `(${marks.join(", ")})`;
  });
  const sql = `insert into ${TABLE} (${COLUMNS.join(", ")}) values ${tuples.join(", ")}` +
    UPSERT_TAIL;
  const result = await db.query(sql, params);
  return result.rowCount;
}

// Every page of one data source, created_time ascending. One query chain
// returns at most 10,000 rows (has_more false, request_status incomplete);
// then a new chain starts on_or_after the last created_time, as Notion
// documents, and the pages repeated at the boundary are skipped by id.
async function walkDataSource(notion, dataSourceId, onResults) {
  const seen = new Set();
  const sorts = [{ timestamp: "created_time", direction: "ascending" }];
  let since = null;
  for (;;) {
    const filter = since
      ? { timestamp: "created_time", created_time: { on_or_after: since } } : undefined;
    let cursor;
    let last = null;
    let fresh = 0;
    let capped = false;
    do {
      const answer = await notion.dataSources.query({
        data_source_id: dataSourceId, page_size: PAGE_SIZE, sorts, filter, start_cursor: cursor,
      });
      const pages = answer.results.filter((p) => p.object === "page" && !seen.has(p.id));
      for (const p of pages) seen.add(p.id);
      fresh += pages.length;
      if (answer.results.length) last = answer.results[answer.results.length - 1].created_time;
      await onResults(pages);
      capped = answer.request_status?.type === "incomplete";
      cursor = answer.has_more ? answer.next_cursor : undefined;
    } while (cursor);
    if (!capped) return;
    if (fresh === 0 || !last || last === since) {
      throw new Error(`data source ${dataSourceId} has more pages created at ${last} ` +
                      "than one Notion query returns");
    }
    since = last;
  }
}

async function sync(args, counters) {
  const notion = new Client({
    auth: args.token,
    baseUrl: args["notion-url"].replace(/\/+$/, ""),
    notionVersion: NOTION_VERSION,
    fetch: (url, init) => {
      counters.requests++;
      return fetch(url, init);
    },
  });
  const db = new pg.Client(pgConfig(args));
  try {
    await db.connect();
  } catch (e) {
    throw new Error(`cannot connect to PostgreSQL: ${e.message}`);
  }
  try {
    const database = await notion.databases.retrieve({ database_id: args.database });
    const stored = new Map();
    const { rows } = await db.query(
      `select notion_page_id, content_hash from ${TABLE}` +
      " where user_id = $1 and notion_database_id = $2", [args.user, database.id]);
    for (const row of rows) stored.set(row.notion_page_id, row.content_hash);

    for (const source of database.data_sources || []) {
      let batch = [];
      const flush = async () => {
        if (batch.length) counters.written += await upsert(db, batch);
        batch = [];
      };
      await walkDataSource(notion, source.id, async (pages) => {
        for (const page of pages) {
          counters.pages++;
          try {
            const hash = contentHash(page);
            if (stored.get(page.id) === hash) {
              counters.unchanged++;
              continue;
            }
            const { name, description } = mapPage(page);
            batch.push([args.user, page.id, database.id, source.id, name, description,
                        JSON.stringify(page.properties), hash, page.created_time,
                        page.last_edited_time]);
          } catch (e) {
            // The guide: a page's error is logged and does not stop the sync.
            counters.page_errors++;
            process.stderr.write(`sync.js: page ${page.id}: ${e.message}\n`);
          }
        }
        if (batch.length >= BATCH_ROWS) await flush();
      });
      await flush();
    }
  } finally {
    await db.end();
  }
}

async function main() {
  const args = parseCommandLine();
  secret = args.token;
  const counters = { pages: 0, written: 0, unchanged: 0, page_errors: 0, requests: 0 };
  const syncStart = process.cpuUsage();
  try {
    await sync(args, counters);
  } catch (e) {
    const what = e.code ? `${e.code}${e.status ? ` (HTTP ${e.status})` : ""}: ` : "";
    fail(`sync failed after ${counters.requests} Notion requests: ${what}${e.message}`);
  }
  const sinceSync = process.cpuUsage(syncStart);
  const total = process.cpuUsage();
  process.stdout.write(JSON.stringify({
    pages: counters.pages,
    written: counters.written,
    unchanged: counters.unchanged,
    page_errors: counters.page_errors,
    requests: counters.requests,
    mode: "full",
    wall_s: +(performance.now() / 1000).toFixed(4),
    cpu_user_s: total.user / 1e6,
    cpu_sys_s: total.system / 1e6,
    cpu_sync_s: (sinceSync.user + sinceSync.system) / 1e6,
    rss_peak_mib: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
  }) + "\n");
}

main();
