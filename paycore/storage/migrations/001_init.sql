-- paycore schema v1: merchants, payments, refunds, events (append-only), outbox, nonces.
-- Column order of payments and refunds matters: the journal writes rows as
-- composite values (see models.Payment.COLUMNS / Refund.COLUMNS).

create table merchants (
    id            text primary key,
    name          text not null,
    secret_enc    bytea not null,           -- AES-GCM under the master key, never clear
    status        text not null default 'active' check (status in ('active', 'disabled')),
    max_amount    bigint check (max_amount > 0),
    sub_merchants jsonb not null default '{}',
    rate_limit    double precision,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

create table payments (
    id                text primary key,
    merchant_id       text not null references merchants(id),
    merchant_order_no text not null,
    fingerprint       text not null,
    amount            bigint not null check (amount > 0),
    currency          text not null,
    method            text not null,
    channel           text not null,
    status            text not null check (status in ('PENDING','PROCESSING','SUCCEEDED','FAILED','CLOSED','REVERSED')),
    channel_trade_no  text,
    qr_code           text,
    pay_params        jsonb,
    refunded_amount   bigint not null default 0,
    refund_reserved   bigint not null default 0,
    failure           jsonb,
    subject           text,
    store_id          text,
    terminal_id       text,
    notify_url        text,
    payer             jsonb,
    nfc               jsonb,
    wallet            text,
    sub_mch_id        text,
    metadata          jsonb not null default '{}',
    expire_at         timestamptz not null,
    created_at        timestamptz not null,
    updated_at        timestamptz not null,
    paid_at           timestamptz,
    seq               integer not null,
    next_check_at     timestamptz,
    checks            integer not null default 0,
    constraint payments_idempotency unique (merchant_id, merchant_order_no),
    constraint payments_refunds_bounded check (refund_reserved <= amount and refunded_amount <= refund_reserved)
);
create index payments_due on payments (next_check_at) where next_check_at is not null;
create index payments_channel_trade_no on payments (channel, channel_trade_no);
create index payments_created on payments (created_at);

create table refunds (
    id                text primary key,
    payment_id        text not null references payments(id),
    merchant_id       text not null,
    refund_no         text not null,
    fingerprint       text not null,
    amount            bigint not null check (amount > 0),
    status            text not null check (status in ('PROCESSING','SUCCEEDED','FAILED')),
    reason            text,
    channel_refund_no text,
    failure           jsonb,
    created_at        timestamptz not null,
    updated_at        timestamptz not null,
    next_check_at     timestamptz,
    checks            integer not null default 0,
    constraint refunds_idempotency unique (payment_id, refund_no)
);
create index refunds_due on refunds (next_check_at) where next_check_at is not null;

-- append-only: every state change, in seq order per payment
create table events (
    event_id    text primary key,
    payment_id  text not null,
    seq         integer not null,
    type        text not null,
    occurred_at timestamptz not null,
    payload     jsonb not null,
    constraint events_seq unique (payment_id, seq)
);
create index events_occurred on events (occurred_at);

create rule events_no_update as on update to events do instead nothing;
create rule events_no_delete as on delete to events do instead nothing;

-- what the relay still has to publish
create table outbox (
    id          bigserial primary key,
    event_id    text not null,
    payment_id  text not null,
    payload     bytea not null,
    created_at  timestamptz not null default now()
);

-- replay protection, shared by every worker process
create table nonces (
    merchant_id text not null,
    nonce       text not null,
    expires_at  timestamptz not null,
    primary key (merchant_id, nonce)
);
create index nonces_expiry on nonces (expires_at);

-- merchant webhooks, written in the same transaction as the final event they announce
create table webhooks (
    id              bigserial primary key,
    event_id        text not null unique,
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
    delivered_at    timestamptz
);
create index webhooks_due on webhooks (next_attempt_at) where status = 'PENDING';
