-- The operations console (/console/) and the merchant portal (/portal/):
-- their users, server-side sessions and the append-only audit log of every
-- write made through them; plus the indexes the payments search needs.

create table console_users (
    id              bigserial primary key,
    username        text not null unique check (username ~ '^[A-Za-z0-9_.@-]{3,64}$'),
    role            text not null check (role in ('admin', 'support', 'finance', 'merchant')),
    merchant_id     text references merchants(id),    -- set for (and only for) merchant users
    password_hash   text not null,                    -- argon2id, PHC string
    totp_enc        bytea,                            -- operators' TOTP key, AES-GCM under the master key
    totp_last_step  bigint not null default 0,        -- a code's time step is accepted once
    status          text not null default 'active' check (status in ('active', 'disabled')),
    failed_logins   integer not null default 0,
    locked_until    timestamptz,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    last_login_at   timestamptz,
    constraint console_users_scope check ((role = 'merchant') = (merchant_id is not null))
);

-- the cookie carries a random token; only its SHA-256 is stored
create table console_sessions (
    id            text primary key,
    user_id       bigint not null references console_users(id) on delete cascade,
    csrf          text not null,
    created_at    timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    ip            text,
    user_agent    text
);
create index console_sessions_user on console_sessions (user_id);

-- who did what, when, from where, before and after; never updated, never deleted
create table console_audit (
    id             bigserial primary key,
    at             timestamptz not null default now(),
    actor          text not null,           -- username, or 'cli:<os user>' for `paycore user …`
    actor_role     text,
    merchant_id    text,                    -- the merchant whose data it touched, when one
    ip             text,
    action         text not null,           -- payment.refund, merchant.update, login, access.denied …
    target         text,                    -- pay_…, m_…, code, webhook id, username
    outcome        text not null check (outcome in ('ok', 'denied', 'failed')),
    reason         text,
    before         jsonb,
    after          jsonb
);
create index console_audit_actor on console_audit (actor, id);
create index console_audit_action on console_audit (action, id);
create index console_audit_target on console_audit (target, id);
create index console_audit_merchant on console_audit (merchant_id, id);

create function console_audit_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'console_audit is append-only';
end $$;
create trigger console_audit_no_change before update or delete on console_audit
    for each row execute function console_audit_append_only();
create trigger console_audit_no_truncate before truncate on console_audit
    for each statement execute function console_audit_append_only();

-- payments search (newest first, keyset on (created_at, id)): by order no across
-- merchants, merchant + time range, status + time range; a payment's webhooks
create index payments_order_no on payments (merchant_order_no);
create index payments_merchant_created on payments (merchant_id, created_at, id);
create index payments_status_created on payments (status, created_at, id);
create index if not exists webhooks_payment on webhooks (payment_id);   -- 012 may have made it first
