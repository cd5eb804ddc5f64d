-- paycore schema v2: operations. Reconciliation runs and their discrepancies,
-- the settlement consumer's totals and its event_id dedup set, and replay
-- bookkeeping for merchant webhooks.

-- one `paycore reconcile --channel X --date D` run; counts are statement lines
create table reconciliation_runs (
    id               bigserial primary key,
    channel          text not null,
    day              date not null,
    status           text not null check (status in ('DONE', 'ERROR')),
    started_at       timestamptz not null,
    finished_at      timestamptz not null default now(),
    statement_lines  integer not null default 0,
    our_lines        integer not null default 0,
    matched          integer not null default 0,
    missing_ours     integer not null default 0,   -- the channel has it, we do not
    missing_channel  integer not null default 0,   -- we have it, the channel does not
    amount_mismatch  integer not null default 0,
    status_mismatch  integer not null default 0,
    error            text
);
create index reconciliation_runs_latest on reconciliation_runs (channel, id desc);
create index reconciliation_runs_day on reconciliation_runs (channel, day);

-- every discrepancy of a run (matched lines are only counted)
create table reconciliation_items (
    run_id           bigint not null references reconciliation_runs(id) on delete cascade,
    result           text not null check (result in ('missing_ours', 'missing_channel', 'amount_mismatch',
                                                     'status_mismatch')),
    kind             text not null check (kind in ('payment', 'refund')),
    out_trade_no     text not null,
    out_refund_no    text,
    channel_trade_no text,
    merchant_id      text,
    our_amount       bigint,
    channel_amount   bigint,
    our_status       text,
    channel_status   text
);
create index reconciliation_items_run on reconciliation_items (run_id);
create index reconciliation_items_trade on reconciliation_items (out_trade_no);

-- `paycore consume settlement`: events already applied (Kafka delivers at least once)
create table settlement_events (
    event_id     text primary key,
    payment_id   text not null,
    type         text not null,
    consumed_at  timestamptz not null default now()
);
create index settlement_events_consumed on settlement_events (consumed_at);

-- money that moved, per merchant, channel and UTC day of the event
create table settlement_totals (
    merchant_id      text not null,
    channel          text not null,
    day              date not null,
    payments_count   bigint not null default 0,   -- payment.succeeded
    payments_amount  bigint not null default 0,
    reversed_count   bigint not null default 0,   -- payment.reversed after the money was taken
    reversed_amount  bigint not null default 0,
    refunds_count    bigint not null default 0,   -- refund.succeeded
    refunds_amount   bigint not null default 0,
    updated_at       timestamptz not null default now(),
    primary key (merchant_id, channel, day)
);

-- `paycore webhooks replay` gives a FAILED (or DELIVERED) webhook a fresh schedule
alter table webhooks add column replays integer not null default 0;
create index webhooks_listing on webhooks (status, created_at);
