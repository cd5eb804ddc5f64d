-- Fees and settlement (docs/settlement.md): fee rules, the fee of each
-- payment, settlement lines per merchant and business day, closed days and
-- their statements, the merchant's URL for merchant-level webhooks.

-- the fee charged on a payment, fixed when it succeeded (null before: nothing was charged).
-- Appended last: models.Payment.COLUMNS follows the table's column order.
alter table payments add column fee bigint check (fee >= 0);

-- rows that are history: an update or delete is an error, not a silent no-op
create function paycore_append_only() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name;
end $$;

-- append-only: a change of fees is a new rule with a later effective_from, never an edit
create table fee_rules (
    id             bigserial primary key,
    merchant_id    text not null references merchants(id),
    channel        text not null,            -- a channel, or '*' for any
    method         text not null,            -- a method, or '*' for any
    rate_ppm       integer not null check (rate_ppm between 0 and 1000000),   -- millionths: 0.38 % = 3800
    fixed          bigint not null default 0 check (fixed >= 0),               -- fen per payment
    min_fee        bigint check (min_fee >= 0),
    max_fee        bigint check (max_fee >= 0),
    effective_from timestamptz not null,
    note           text,
    created_at     timestamptz not null default now(),
    constraint fee_rules_once unique (merchant_id, channel, method, effective_from),
    constraint fee_rules_min_max check (min_fee is null or max_fee is null or min_fee <= max_fee)
);
create trigger fee_rules_append_only before update or delete on fee_rules
    for each row execute function paycore_append_only();

-- one line per journal event that moved a merchant's money (the event id deduplicates
-- Kafka's at-least-once delivery); amount and fee are signed: + to the merchant's
-- turnover / fee charged, - for money returned / fee given back; net = amount - fee
create table settlement_lines (
    event_id          text primary key,
    merchant_id       text not null,
    day               date not null,          -- the statement the line is on
    original_date     date,                   -- adjustments: the closed day the event belongs to
    kind              text not null check (kind in ('payment', 'refund', 'adjustment')),
    type              text not null,          -- the journal event type
    id                text not null,          -- pay_… or rfd_…
    payment_id        text not null,
    merchant_order_no text not null,
    channel           text not null,
    method            text not null,
    amount            bigint not null,
    fee               bigint not null,
    net               bigint not null,
    occurred_at       timestamptz not null,
    consumed_at       timestamptz not null default now(),
    constraint settlement_lines_net check (net = amount - fee),
    constraint settlement_lines_adjustment check ((kind = 'adjustment') = (original_date is not null))
);
create index settlement_lines_statement on settlement_lines (merchant_id, day, occurred_at, event_id);
create index settlement_lines_day on settlement_lines (day);

-- a business day closed for every merchant (`paycore settlement close`)
create table settlement_closes (
    day        date primary key,
    closed_at  timestamptz not null default now()
);

-- what each merchant was given when its day closed: never rewritten
create table settlement_statements (
    merchant_id  text not null,
    day          date not null,
    closed_at    timestamptz not null,
    summary      jsonb not null,              -- the Settlement object of the API
    file         bytea not null,              -- the CSV statement, exactly as served
    file_sha256  text not null,
    primary key (merchant_id, day)
);
create trigger settlement_statements_append_only before update or delete on settlement_statements
    for each row execute function paycore_append_only();

-- merchant-level webhooks (settlement.closed) go here; payment webhooks go to the payment's notify_url
alter table merchants add column webhook_url text;

-- replaced by settlement_lines: their primary key is the dedup set, their sums the totals
-- (per business day, with fees); the old totals counted UTC days without fees
drop table settlement_totals;
drop table settlement_events;
