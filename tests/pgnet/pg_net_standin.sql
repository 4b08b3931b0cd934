-- pg_net_standin.sql - a plain-SQL stand-in for the pg_net extension, for tests.
--
-- pg_net (supabase/pg_net) is not packaged in Debian 12. This script creates
-- schema `net` with the public surface of pg_net v0.20.5: sql/pg_net.sql as of
-- commit 217e564 (v0.19.7), which the upgrade scripts 0.19.7 -> 0.20.0 -> ...
-- -> 0.20.5 leave unchanged ("no SQL changes"), with the C helpers
-- (_urlencode_string, _encode_url_with_params_array, wake, worker_restart,
-- wait_until_running) rewritten in PL/pgSQL. The background worker is played
-- by tests/pgnet/pgnet_worker.py. See /work/shared/reference/platform.md §1
-- and tests/pgnet/README.
--
-- Apply as a superuser, in the database the worker serves:
--     psql -X -v ON_ERROR_STOP=1 -d DB -f tests/pgnet/pg_net_standin.sql
-- Applying it again is harmless: tables, their rows and the types are kept,
-- functions are replaced. It refuses to run where the real extension exists.
--
-- Same as real pg_net: table and column names, types, NOT NULLs, UNLOGGED,
-- the index on _http_response(created), the net.http_method domain, function
-- names, argument names, types, defaults and return types; http_post's
-- Content-Type check and default header; request ids from the bigserial; the
-- URL errors of v0.20.x ('invalid URL "<url>": <curl_url_strerror>', SQLSTATE
-- XX000) and the URL normalisation of libcurl's URL API (7.88.1, bookworm);
-- curl_escape() encoding of params; grants to PUBLIC (as in 0.20.5; 0.20.6
-- revokes the write privileges); http_collect_response's bug (it raises
-- "query has no destination for result data" after its deprecation notice).
--
-- Known differences from real pg_net (tests/pgnet/README has the details):
--  1. Not an extension: no pg_extension row, no CREATE/DROP EXTENSION, pg_dump
--     dumps the objects; `drop schema net cascade` removes them. Schema net
--     carries a comment naming the stand-in.
--  2. No shared_preload_libraries, no background worker process: the worker
--     (pgnet_worker.py) is a client session named 'pg_net 0.20.5 worker';
--     check_worker_is_up() and wait_until_running() accept that session.
--  3. net.wake() does nothing: the worker polls every --interval (0.1 s), so
--     direct queue inserts and COMMIT PREPARED are sent at the next poll and
--     a request leaves up to --interval after COMMIT (pg_net: at once).
--  4. net.worker_restart() is SECURITY DEFINER and restarts the worker by
--     NOTIFY pg_net_standin_restart (it reconnects after its batch).
--  5. The URL checks model libcurl 7.88.1's curl_url_set() in PL/pgSQL (same
--     answers on 133 URLs; selftest.py compares 61 with libcurl); rare inputs (IDN hosts, %-escaped non-ASCII
--     in hosts, IPv6 zone ids) may differ. The helpers are slower than C.
--  6. pg_net.batch_size and pg_net.ttl are read at every poll with
--     current_setting(..., true); pg_net.database_name/username are the
--     worker's --dbname/--user; a bad value is not rejected by a GUC check.
--  7. The worker speaks HTTP/1.1 only (libcurl may use HTTP/2 over TLS), one
--     connection per request, no proxy environment variables, Python's TLS.
--  8. Error texts are libcurl's curl_easy_strerror() strings chosen from
--     Python exceptions; unusual failures may get a neighbouring text.
--  9. Invalid UTF-8 in a response becomes U+FFFD (pg_net stores it as is);
--     headers are those of the final answer after redirects.
-- 10. At most 50 redirects (libcurl 7.88: unlimited, ended by the timeout).
-- 11. No "Expect: 100-continue" for large bodies. (User-Agent is sent also
--     for NULL headers: not a difference - pg_net's dequeue query turns NULL
--     headers into an empty array; platform.md's "only when headers are
--     non-NULL" describes its C code alone.)
-- 12. A negative timeout_milliseconds gets an error row; pg_net's worker
--     fails the whole batch and retries it forever.
-- 13. A header with CR or LF gets an error row (later pg_net's message);
--     pg_net 0.20.5 lets libcurl send it.
-- 14. On SIGTERM a batch in flight is finished within --stop-grace, else
--     rolled back (its requests stay queued); pg_net finishes it.
-- 15. Old responses are pruned at every poll (pg_net: while awake).

set client_min_messages = warning;

do $standin$
begin
  if exists (select 1 from pg_extension where extname = 'pg_net') then
    raise exception 'the pg_net extension is installed here; not applying the stand-in';
  end if;
end
$standin$;

create schema if not exists net;
comment on schema net is 'pg_net 0.20.5 stand-in (tests/pgnet/pg_net_standin.sql), not the real extension';

do $standin$
begin
  if to_regtype('net.http_method') is null then
    create domain net.http_method as text
    check (
      value ilike 'get'
      or value ilike 'post'
      or value ilike 'delete'
    );
  end if;
end
$standin$;

-- Store pending requests. The background worker reads from here
-- API: Private
create unlogged table if not exists net.http_request_queue(
    id bigserial,
    method net.http_method not null,
    url text not null,
    headers jsonb,
    body bytea,
    timeout_milliseconds int not null
);

create or replace function net.check_worker_is_up() returns void as $$
begin
  -- stand-in: the worker is a client session named by its application_name
  if not exists (select pid from pg_stat_activity
                 where backend_type ilike '%pg_net%'
                    or application_name = 'pg_net 0.20.5 worker') then
    raise exception using
      message = 'the pg_net background worker is not up'
    , detail  = 'the pg_net background worker is down due to an internal error and cannot process requests'
    , hint    = 'make sure that you didn''t modify any of pg_net internal tables';
  end if;
end
$$ language plpgsql;
comment on function net.check_worker_is_up() is 'raises an exception if the pg_net background worker is not up, otherwise it doesn''t return anything';

-- Associates a response with a request
-- API: Private
create unlogged table if not exists net._http_response(
    id bigint,
    status_code integer,
    content_type text,
    headers jsonb,
    content text,
    timed_out bool,
    error_msg text,
    created timestamptz not null default now()
);

create index if not exists _http_response_created_idx on net._http_response (created);

-- Blocks until an http_request is complete
-- API: Private
create or replace function net._await_response(
    request_id bigint
)
    returns bool
    language plpgsql
as $$
declare
    rec net._http_response;
begin
    while rec is null loop
        select *
        into rec
        from net._http_response
        where id = request_id;

        if rec is null then
            -- Wait 50 ms before checking again
            perform pg_sleep(0.05);
        end if;
    end loop;

    return true;
end;
$$;

-- url encode a string: curl_escape(), every byte of the UTF-8 text but
-- A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex). NULL gives NULL.
-- API: Private
create or replace function net._urlencode_string(string varchar)
    -- url encoded string
    returns text
    language plpgsql
    immutable
as $$
declare
    bytes bytea;
    b int;
    out text := '';
begin
    if string is null then
        return null;
    end if;
    bytes := convert_to(string, 'UTF8');
    for i in 0 .. length(bytes) - 1 loop
        b := get_byte(bytes, i);
        if b between 48 and 57 or b between 65 and 90 or b between 97 and 122
           or b in (45, 46, 95, 126) then
            out := out || chr(b);
        else
            out := out || '%' || upper(lpad(to_hex(b), 2, '0'));
        end if;
    end loop;
    return out;
end;
$$;

-- The URL checked and normalised as libcurl's curl_url_set(CURLUPART_URL)
-- and curl_url_get(CURLUPART_URL) do, with every element of params_array
-- appended to the query (CURLU_APPENDQUERY). An invalid URL raises
-- 'invalid URL "<url>": <reason>' (SQLSTATE XX000) as pg_net 0.20.x does.
-- NULL in either argument gives NULL.
-- API: Private
create or replace function net._encode_url_with_params_array(url text, params_array text[])
    -- url encoded string
    returns text
    language plpgsql
    immutable
as $$
declare
    schemes constant text[] := array['dict', 'file', 'ftp', 'ftps', 'gopher', 'gophers',
        'http', 'https', 'imap', 'imaps', 'ldap', 'ldaps', 'mqtt', 'pop3', 'pop3s',
        'rtmp', 'rtmpe', 'rtmps', 'rtmpt', 'rtmpte', 'rtmpts', 'rtsp', 'scp', 'sftp',
        'smb', 'smbs', 'smtp', 'smtps', 'telnet', 'tftp'];
    bad constant text := '[\x01-\x20\x7f]';
    reason text;
    scheme text;
    rest text;
    slashes int;
    authority text;
    userinfo text;
    hostport text;
    host text;
    port text;
    path text;
    query text;
    fragment text;
    pos int;
    seg text;
    code int;
    done text := '';
    param text;
begin
    if url is null or params_array is null then
        return null;
    end if;

    <<parse>>
    begin
        scheme := substring(url from '^([A-Za-z0-9+.-]{1,40}):');
        if scheme is null then
            reason := 'Bad scheme';
            exit parse;
        end if;
        scheme := lower(scheme);
        if not scheme = any (schemes) then
            reason := 'Unsupported URL scheme';
            exit parse;
        end if;
        rest := substr(url, length(scheme) + 2);

        if scheme = 'file' then
            if rest like '//%' then
                rest := substr(rest, 3);
                host := substring(rest from '^[^/]*');
                if host not in ('', 'localhost', '127.0.0.1') then
                    reason := 'Bad file:// URL';
                    exit parse;
                end if;
                rest := substr(rest, length(host) + 1);
            end if;
            if rest not like '/%' then
                reason := 'Bad file:// URL';
                exit parse;
            end if;
            authority := '';
            host := '';
        else
            slashes := length(substring(rest from '^/*'));
            if slashes < 1 or slashes > 3 then
                reason := 'Unsupported number of slashes following scheme';
                exit parse;
            end if;
            rest := substr(rest, slashes + 1);
            authority := substring(rest from '^[^/?#]*');
            rest := substr(rest, length(authority) + 1);
        end if;

        -- path, query and fragment (checked in the order libcurl does)
        pos := strpos(rest, '#');
        if pos > 0 then
            fragment := substr(rest, pos + 1);
            rest := substr(rest, 1, pos - 1);
        end if;
        pos := strpos(rest, '?');
        if pos > 0 then
            query := substr(rest, pos + 1);
            rest := substr(rest, 1, pos - 1);
        end if;
        path := rest;
        if fragment ~ bad then
            reason := 'Bad fragment';
            exit parse;
        end if;
        if query ~ bad then
            reason := 'Bad query';
            exit parse;
        end if;
        if path ~ bad then
            reason := 'Bad path';
            exit parse;
        end if;

        if scheme <> 'file' then
            -- user and password
            pos := strpos(authority, '@');
            if pos > 0 then
                userinfo := substr(authority, 1, pos - 1);
                hostport := substr(authority, pos + 1);
                if split_part(userinfo, ':', 1) ~ bad then
                    reason := 'Bad user';
                    exit parse;
                end if;
                if strpos(userinfo, ':') > 0
                   and substr(userinfo, strpos(userinfo, ':') + 1) ~ bad then
                    reason := 'Bad password';
                    exit parse;
                end if;
            else
                hostport := authority;
            end if;

            -- host and port
            if hostport like '[%' then
                pos := strpos(hostport, ']');
                if pos = 0 then
                    reason := 'Bad IPv6 address';
                    exit parse;
                end if;
                host := substr(hostport, 1, pos);
                port := substr(hostport, pos + 1);
                if port <> '' and port not like ':%' then
                    reason := 'Port number was not a decimal number between 0 and 65535';
                    exit parse;
                end if;
                port := substr(port, 2);
            else
                pos := strpos(hostport, ':');
                if pos > 0 then
                    host := substr(hostport, 1, pos - 1);
                    port := substr(hostport, pos + 1);
                else
                    host := hostport;
                    port := '';
                end if;
            end if;
            if port <> '' then
                if port !~ '^[0-9]+$' then
                    reason := 'Port number was not a decimal number between 0 and 65535';
                    exit parse;
                end if;
                port := coalesce(nullif(ltrim(port, '0'), ''), '0');
                if length(port) > 5 or port::int > 65535 then
                    reason := 'Port number was not a decimal number between 0 and 65535';
                    exit parse;
                end if;
            end if;
            if host = '' then
                reason := 'No host part in the URL';
                exit parse;
            end if;
            if host like '[%' then
                if host !~ '^\[[0-9A-Fa-f:.]+(%25[A-Za-z0-9._~-]+)?\]$' then
                    reason := 'Bad IPv6 address';
                    exit parse;
                end if;
            else
                -- libcurl checks the percent-decoded host name
                for seg in select m[1] from regexp_matches(host, '%([0-9A-Fa-f]{2})', 'g') m loop
                    code := ('x' || seg)::bit(8)::int;
                    if code < 33 or code = 127 then
                        reason := 'Bad hostname';
                        exit parse;
                    elsif code < 128 then
                        host := replace(host, '%' || seg, chr(code));
                    end if;
                end loop;
                if host ~ '[\x01-\x20\x7f/:#?!@{}\[\]\\$''"^`*<>=;,+&()%]' then
                    reason := 'Bad hostname';
                    exit parse;
                end if;
            end if;
        end if;

        -- remove dot segments (RFC 3986 5.2.4)
        if path = '' then
            path := '/';
        end if;
        while path <> '' loop
            if path like '../%' then
                path := substr(path, 4);
            elsif path like './%' then
                path := substr(path, 3);
            elsif path like '/./%' then
                path := substr(path, 3);
            elsif path = '/.' then
                path := '/';
            elsif path like '/../%' or path = '/..' then
                path := '/' || substr(path, 5);
                done := regexp_replace(done, '/?[^/]*$', '');
            elsif path in ('.', '..') then
                path := '';
            else
                seg := substring(path from '^/?[^/]*');
                done := done || seg;
                path := substr(path, length(seg) + 1);
            end if;
        end loop;
        path := done;
    end parse;

    if reason is not null then
        raise exception using
            message = format('invalid URL "%s": %s', url, reason),
            errcode = 'XX000';
    end if;

    foreach param in array params_array loop
        continue when param is null or param = '';
        query := case when coalesce(query, '') = '' then param else query || '&' || param end;
    end loop;

    return scheme || '://'
        || case when userinfo is not null then userinfo || '@' else '' end
        || host
        || case when coalesce(port, '') <> '' then ':' || port else '' end
        || path
        || case when coalesce(query, '') <> '' then '?' || query else '' end
        || case when coalesce(fragment, '') <> '' then '#' || fragment else '' end;
end;
$$;

-- Reload the configuration and restart the worker (the stand-in worker
-- reconnects after its current batch). Returns pg_reload_conf()'s result.
create or replace function net.worker_restart()
  returns bool
  language plpgsql
  security definer
  set search_path = pg_catalog
as $$
declare
  result bool := pg_reload_conf();
begin
  perform pg_notify('pg_net_standin_restart', '');
  return result;
end;
$$;

create or replace function net.wait_until_running()
  returns void
  language plpgsql
as $$
begin
  while not exists (select pid from pg_stat_activity
                    where backend_type ilike '%pg_net%'
                       or application_name = 'pg_net 0.20.5 worker') loop
    perform pg_sleep(0.05);
  end loop;
end;
$$;
comment on function net.wait_until_running() is 'waits until the worker is running';

-- Real pg_net wakes its worker when the transaction commits; the stand-in
-- worker polls, so there is nothing to do.
create or replace function net.wake()
  returns void
  language plpgsql
as $$
begin
end;
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_get(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    -- Add to the request queue
    insert into net.http_request_queue(method, url, headers, timeout_milliseconds)
    values (
        'GET',
        net._encode_url_with_params_array(url, params_array),
        headers,
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_post(
    -- url for the request
    url text,
    -- body of the POST request
    body jsonb default '{}'::jsonb,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int DEFAULT 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
    content_type text;
begin

    -- Exctract the content_type from headers
    select
        header_value into content_type
    from
        jsonb_each_text(coalesce(headers, '{}'::jsonb)) r(header_name, header_value)
    where
        lower(header_name) = 'content-type'
    limit
        1;

    -- If the user provided new headers and omitted the content type
    -- add it back in automatically
    if content_type is null then
        select headers || '{"Content-Type": "application/json"}'::jsonb into headers;
    end if;

    -- Confirm that the content-type is set as "application/json"
    if content_type <> 'application/json' then
        raise exception 'Content-Type header must be "application/json"';
    end if;

    select
        coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into
        params_array
    from
        jsonb_each_text(params);

    -- Add to the request queue
    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values (
        'POST',
        net._encode_url_with_params_array(url, params_array),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_delete(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000,
    -- optional body of the request
    body jsonb default NULL
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    -- Add to the request queue
    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values (
        'DELETE',
        net._encode_url_with_params_array(url, params_array),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

do $standin$
begin
  -- Lifecycle states of a request (all protocols)
  -- API: Public
  if to_regtype('net.request_status') is null then
    create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');
  end if;

  -- A response from an HTTP server
  -- API: Public
  if to_regtype('net.http_response') is null then
    create type net.http_response AS (
        status_code integer,
        headers jsonb,
        body text
    );
  end if;

  -- State wrapper around responses
  -- API: Public
  if to_regtype('net.http_response_result') is null then
    create type net.http_response_result as (
        status net.request_status,
        message text,
        response net.http_response
    );
  end if;
end
$standin$;

-- Collect respones of an http request
-- API: Private
create or replace function net._http_collect_response(
    -- request_id reference
    request_id bigint,
    -- when `true`, return immediately. when `false` wait for the request to complete before returning
    async bool default true
)
    -- http response composite wrapped in a result type
    returns net.http_response_result
    language plpgsql
as $$
declare
    rec net._http_response;
    req_exists boolean;
begin

    if not async then
        perform net._await_response(request_id);
    end if;

    select *
    into rec
    from net._http_response
    where id = request_id;

    if rec is null or rec.error_msg is not null then
        -- The request is either still processing or the request_id provided does not exist

        -- TODO: request in progress is indistinguishable from request that doesn't exist

        -- No request matching request_id found
        return (
            'ERROR',
            coalesce(rec.error_msg, 'request matching request_id not found'),
            null
        )::net.http_response_result;

    end if;

    -- Return a valid, populated http_response_result
    return (
        'SUCCESS',
        'ok',
        (
            rec.status_code,
            rec.headers,
            rec.content
        )::net.http_response
    )::net.http_response_result;
end;
$$;

-- Deprecated. Kept exactly as in pg_net: after the notice it fails with
-- "query has no destination for result data"; use net._http_collect_response.
create or replace function net.http_collect_response(
    -- request_id reference
    request_id bigint,
    -- when `true`, return immediately. when `false` wait for the request to complete before returning
    async bool default true
)
    -- http response composite wrapped in a result type
    returns net.http_response_result
    language plpgsql
as $$
begin
  raise notice 'The net.http_collect_response function is deprecated.';
  select net._http_collect_response(request_id, async);
end;
$$;

grant usage on schema net to PUBLIC;
grant all on all sequences in schema net to PUBLIC;
grant all on all tables in schema net to PUBLIC;
