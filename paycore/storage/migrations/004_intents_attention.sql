-- paycore schema v4: money is never silently wrong.
--
-- payments.intent: a cancel/reverse/close committed before the provider is
-- called ('close' | 'reverse'); with next_check_at the recovery loop finishes
-- it after a crash or a failed call. payments.late_paid_at: money the provider
-- reported for a payment already CLOSED/FAILED/REVERSED (payment.late_succeeded).
-- merchants.late_payment_action: refund such late money at once (default) or
-- hold it for an operator. Column order matters (models.Payment.COLUMNS).
alter table payments add column intent text check (intent in ('close', 'reverse'));
alter table payments add column late_paid_at timestamptz;
alter table merchants add column late_payment_action text not null default 'refund'
    check (late_payment_action in ('refund', 'hold'));

-- every disagreement with a provider, as a row an operator resolves through the engine
create table attention_items (
    id          bigserial primary key,
    kind        text not null,
    payment_id  text,
    refund_id   text,
    merchant_id text not null,
    channel     text not null,
    status      text not null default 'OPEN' check (status in ('OPEN', 'RESOLVED')),
    evidence    jsonb not null,
    created_at  timestamptz not null default now(),
    resolved_at timestamptz,
    resolved_by text,
    resolution  text,
    reason      text
);
create index attention_open on attention_items (created_at) where status = 'OPEN';
create index attention_payment on attention_items (payment_id);
create index attention_listing on attention_items (status, id desc);
-- one open item per payment, refund and reason: a repeated finding is the same item
create unique index attention_open_once on attention_items (payment_id, coalesce(refund_id, ''), kind)
    where status = 'OPEN';
