-- One code for every app (一码通付): the static codes merchants print.
-- A code is the last part of /c/{code}; the merchant is always taken from
-- this row, never from the page. store_id null = the merchant's own code.
-- amount null = the customer types the amount; otherwise a fixed-price code.

create table onecodes (
    code        text primary key check (code ~ '^[A-Za-z0-9_.-]{1,100}$'),
    merchant_id text not null references merchants(id),
    store_id    text check (store_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    amount      bigint check (amount > 0),
    status      text not null default 'active' check (status in ('active', 'disabled')),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create index onecodes_merchant on onecodes (merchant_id, store_id);
