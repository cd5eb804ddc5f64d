-- Money after the payment: profit-sharing receivers, splits (分账) and their
-- returns, payouts (转账/代付). A split's events count on its payment's seq
-- (like refunds); a payout is its own event stream (events.payment_id holds
-- the payout id, seq counts per payout). Real names are kept only AES-GCM
-- encrypted under the master key (name_enc), never clear.

create table receivers (
    id           text primary key,
    merchant_id  text not null references merchants(id),
    receiver_no  text not null,
    fingerprint  text not null,
    channel      text not null,
    type         text not null check (type in ('merchant', 'openid', 'user_id', 'account')),
    account      text not null,
    name_masked  text,
    name_enc     bytea,
    status       text not null check (status in ('ACTIVE', 'FAILED')),
    failure      jsonb,
    created_at   timestamptz not null,
    updated_at   timestamptz not null,
    constraint receivers_idempotency unique (merchant_id, receiver_no)
);

-- payments created with profit_sharing: true (the channel holds their funds). Written just
-- before the payment itself (no foreign key): a hold whose payment insert lost to an
-- identical earlier request names no payment and is harmless.
create table payment_holds (
    payment_id   text primary key,
    created_at   timestamptz not null default now()
);

create table splits (
    id            text primary key,
    payment_id    text not null references payments(id),
    merchant_id   text not null,
    split_no      text not null,
    fingerprint   text not null,
    amount        bigint not null check (amount >= 0),      -- the sum of the receivers' amounts
    finish        boolean not null,
    status        text not null check (status in ('PROCESSING', 'SUCCEEDED', 'FAILED')),
    receivers     jsonb not null,                          -- [{receiver_id, amount, description, status, failure?}]
    returned      bigint not null default 0,               -- given back to the merchant before refunds
    channel_split_no text,
    failure       jsonb,
    created_at    timestamptz not null,
    updated_at    timestamptz not null,
    next_check_at timestamptz,
    checks        integer not null default 0,
    constraint splits_idempotency unique (payment_id, split_no),
    constraint splits_returned_bounded check (returned <= amount)
);
create index splits_due on splits (next_check_at) where next_check_at is not null;
create index splits_payment on splits (payment_id);


create table split_returns (
    id            text primary key,
    split_id      text not null references splits(id),
    refund_id     text not null,
    receiver_id   text not null,
    amount        bigint not null check (amount > 0),
    status        text not null check (status in ('PROCESSING', 'SUCCEEDED', 'FAILED')),
    failure       jsonb,
    created_at    timestamptz not null,
    updated_at    timestamptz not null,
    next_check_at timestamptz,
    checks        integer not null default 0
);
create index split_returns_due on split_returns (next_check_at) where next_check_at is not null;
create index split_returns_refund on split_returns (refund_id);

create table payouts (
    id            text primary key,
    merchant_id   text not null references merchants(id),
    payout_no     text not null,
    fingerprint   text not null,
    amount        bigint not null check (amount > 0),
    currency      text not null,
    channel       text not null,
    destination_type text not null,
    destination   text not null,
    name_masked   text,
    name_enc      bytea,
    remark        text,
    notify_url    text,
    status        text not null check (status in ('PROCESSING', 'SUCCEEDED', 'FAILED', 'RETURNED')),
    channel_payout_no text,
    failure       jsonb,
    business_day  date not null,                           -- Asia/Shanghai day, for the daily limit
    seq           integer not null,
    created_at    timestamptz not null,
    updated_at    timestamptz not null,
    next_check_at timestamptz,
    checks        integer not null default 0,
    constraint payouts_idempotency unique (merchant_id, payout_no)
);
create index payouts_due on payouts (next_check_at) where next_check_at is not null;
create index payouts_daily on payouts (merchant_id, business_day);
