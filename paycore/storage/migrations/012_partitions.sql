-- paycore schema v12: data that stays fast as it grows (docs/data.md).
--
-- The history tables become natively partitioned by time, so that retention
-- is a DETACH + DROP of a whole partition (no DELETE, no bloat, no vacuum debt)
-- and every query that names a time range touches only its partitions:
--
--   events            by occurred_at, one partition per UTC day
--   webhooks          by created_at,  one partition per UTC month
--   settlement_lines  by occurred_at (the event's instant, identical on every
--                     redelivery of the event), one partition per UTC month
--
-- A primary key or unique constraint of a partitioned table must contain the
-- partition key, so:
--   * events:           (event_id, occurred_at); (payment_id, seq) is an index, no longer a
--                       constraint: one event per seq is guaranteed by the journal writing an
--                       event only for a payment whose `seq` guard applied (tests/integration/
--                       test_data.py checks a stale change writes nothing);
--   * webhooks:         (id, created_at) and (event_id, created_at);
--   * settlement_lines: (event_id, occurred_at): the consumer's dedup
--                       (`on conflict (event_id, occurred_at) do nothing`) still catches every
--                       redelivery, since a redelivered event carries the same occurred_at.
-- Not partitioned, and why (docs/data.md): payments and refunds (mutable rows whose
-- (merchant_id, merchant_order_no) and (payment_id, refund_no) must stay unique forever),
-- nonces (uniqueness per merchant across the whole replay window; the table holds
-- rate x window rows whatever its age), outbox (a queue, empty when the relay keeps up),
-- attention_items (mutable, rare, a partial unique index on OPEN items).
--
-- Partitions are created ahead by `paycore maintain` (paycore/ops/maintain.py), which also
-- detaches and drops those past their retention; the settlement consumer makes the month of
-- an old event it is given (a replay of the topic) when it is missing. There is no default partition on purpose:
-- it would forbid DETACH … CONCURRENTLY, and a row in it would block creating its range.

-- one partition [lo, lo + 1 unit) of ``parent`` by ``col``, created standalone then attached:
-- ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, so writers are never blocked (CREATE TABLE
-- … PARTITION OF would take ACCESS EXCLUSIVE). Returns the partition's name, null if it existed.
create function paycore_create_partition(parent text, col text, unit text, at timestamptz)
returns text language plpgsql as $$
declare
    lo timestamptz := date_trunc(unit, at, 'UTC');
    hi timestamptz := lo + ('1 ' || unit)::interval;
    name text := parent || '_p' || to_char(lo at time zone 'UTC', case unit when 'day' then 'YYYYMMDD'
                                                                             else 'YYYYMM' end);
begin
    if unit not in ('day', 'month') then
        raise exception 'partition unit must be day or month, not %', unit;
    end if;
    if to_regclass(name) is not null then
        return null;
    end if;
    -- two sessions creating the same partition (maintain, the settlement consumer): one waits
    perform pg_advisory_xact_lock(7261013);
    if to_regclass(name) is not null then
        return null;
    end if;
    execute format('create table %I (like %I including defaults including constraints)', name, parent);
    -- the check lets ATTACH skip its validation scan (the table is empty anyway)
    execute format('alter table %I add constraint %I check (%I >= %L and %I < %L)',
                   name, name || '_range', col, lo, col, hi);
    execute format('alter table %I attach partition %I for values from (%L) to (%L)', parent, name, lo, hi);
    return name;
end $$;

-- every partition of ``parent`` from ``since`` to ``until`` (both included); returns those created
create function paycore_ensure_partitions(parent text, col text, unit text, since timestamptz, until timestamptz)
returns setof text language plpgsql as $$
declare
    at timestamptz := date_trunc(unit, since, 'UTC');
    made text;
begin
    while at <= until loop
        made := paycore_create_partition(parent, col, unit, at);
        if made is not null then
            return next made;
        end if;
        at := at + ('1 ' || unit)::interval;
    end loop;
end $$;

-- ------------------------------------------------------------------ events
alter table events rename to events_unpartitioned;
alter table events_unpartitioned drop constraint events_pkey, drop constraint events_seq;
drop index events_occurred;
drop rule events_no_update on events_unpartitioned;
drop rule events_no_delete on events_unpartitioned;

create table events (
    event_id    text not null,
    payment_id  text not null,
    seq         integer not null,
    type        text not null,
    occurred_at timestamptz not null,
    payload     jsonb not null,
    constraint events_pkey primary key (event_id, occurred_at)
) partition by range (occurred_at);
create index events_payment on events (payment_id, seq);
create index events_occurred on events (occurred_at);
-- history: an update or delete is an error (it was a silent no-op rule before); retention drops partitions
create trigger events_append_only before update or delete on events
    for each row execute function paycore_append_only();

select paycore_ensure_partitions('events', 'occurred_at', 'day',
    least(now() - interval '1 day', (select min(occurred_at) from events_unpartitioned)),
    now() + interval '14 days');
insert into events select event_id, payment_id, seq, type, occurred_at, payload from events_unpartitioned;
drop table events_unpartitioned;

-- ---------------------------------------------------------------- webhooks
alter table webhooks rename to webhooks_unpartitioned;
alter table webhooks_unpartitioned drop constraint webhooks_pkey, drop constraint webhooks_event_id_key;
drop index webhooks_due, webhooks_listing;
drop index if exists webhooks_payment;   -- 007 (console) made it on the table being replaced
alter sequence webhooks_id_seq owned by none;   -- the ids go on from where they were
alter table webhooks_unpartitioned alter column id drop default;

create table webhooks (
    id              bigint not null default nextval('webhooks_id_seq'),
    event_id        text not null,
    merchant_id     text not null,
    payment_id      text not null,
    url             text not null,
    payload         bytea not null,
    status          text not null default 'PENDING' check (status in ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz not null default now(),
    delivered_at    timestamptz,
    replays         integer not null default 0,
    constraint webhooks_pkey primary key (id, created_at),
    constraint webhooks_event_id_key unique (event_id, created_at)
) partition by range (created_at);
alter sequence webhooks_id_seq owned by webhooks.id;
create index webhooks_due on webhooks (next_attempt_at) where status = 'PENDING';
create index webhooks_listing on webhooks (status, created_at);
create index webhooks_payment on webhooks (payment_id);

select paycore_ensure_partitions('webhooks', 'created_at', 'month',
    least(now() - interval '1 day', (select min(created_at) from webhooks_unpartitioned)),
    now() + interval '2 months');
insert into webhooks (id, event_id, merchant_id, payment_id, url, payload, status, attempts, next_attempt_at,
                      last_status, last_error, created_at, delivered_at, replays)
select id, event_id, merchant_id, payment_id, url, payload, status, attempts, next_attempt_at,
       last_status, last_error, created_at, delivered_at, replays from webhooks_unpartitioned;
drop table webhooks_unpartitioned;

-- -------------------------------------------------------- settlement_lines
alter table settlement_lines rename to settlement_lines_unpartitioned;
alter table settlement_lines_unpartitioned drop constraint settlement_lines_pkey;
drop index settlement_lines_statement, settlement_lines_day;
alter table settlement_lines_unpartitioned drop constraint settlement_lines_net,
    drop constraint settlement_lines_adjustment;

create table settlement_lines (
    event_id          text not null,
    merchant_id       text not null,
    day               date not null,
    original_date     date,
    kind              text not null constraint settlement_lines_kind_check
                      check (kind in ('payment', 'refund', 'adjustment', 'split', 'payout')),   -- 011
    type              text not null,
    id                text not null,
    payment_id        text not null,
    merchant_order_no text not null,
    channel           text not null,
    method            text not null,
    amount            bigint not null,
    fee               bigint not null,
    net               bigint not null,
    occurred_at       timestamptz not null,
    consumed_at       timestamptz not null default now(),
    constraint settlement_lines_pkey primary key (event_id, occurred_at),
    constraint settlement_lines_net check (net = amount - fee),
    constraint settlement_lines_adjustment check ((kind = 'adjustment') = (original_date is not null))
) partition by range (occurred_at);
create index settlement_lines_statement on settlement_lines (merchant_id, day, occurred_at, event_id);
create index settlement_lines_day on settlement_lines (day);

select paycore_ensure_partitions('settlement_lines', 'occurred_at', 'month',
    least(now() - interval '1 day', (select min(occurred_at) from settlement_lines_unpartitioned)),
    now() + interval '2 months');
insert into settlement_lines select event_id, merchant_id, day, original_date, kind, type, id, payment_id,
    merchant_order_no, channel, method, amount, fee, net, occurred_at, consumed_at
    from settlement_lines_unpartitioned;
drop table settlement_lines_unpartitioned;

-- ------------------------------------------------- payments and refunds: index paths
-- reconciliation by business day (ops/reconcile.py): the channel's money of the day
create index payments_paid on payments (channel, paid_at) where paid_at is not null;
create index refunds_succeeded on refunds (updated_at) where status = 'SUCCEEDED';
-- a merchant's payments of a day (search, console, exports)
-- 007 (console) has it already as (merchant_id, created_at, id), its keyset order: that one serves both
create index if not exists payments_merchant_created on payments (merchant_id, created_at);
-- what the retention job removed: history leaves a trace (partitions it created are in the catalog)
create table partition_log (
    partition   text not null,
    parent      text not null,
    action      text not null check (action in ('dropped', 'exported')),
    detail      text,
    at          timestamptz not null default now()
);
create index partition_log_at on partition_log (at);
