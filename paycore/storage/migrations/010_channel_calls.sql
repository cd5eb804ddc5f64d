-- paycore schema v10: every provider call of a payment, for operators (paycore payment show,
-- /ops/payments/{id}). Written in batches off the request path; never the request or answer
-- bodies (they can hold card tokens): the flow, what came of it, the HTTP status and the time.
create table channel_calls (
    id          bigserial primary key,
    payment_id  text not null,
    refund_id   text,
    channel     text not null,
    flow        text not null,          -- pay | query | close | reverse | refund | refund_query
    outcome     text not null check (outcome in ('ok', 'declined', 'error')),
    answer      text,                   -- the normalised answer (SUCCEEDED, NOT_FOUND, ...) when there was one
    code        text,                   -- the provider's decline code, or the error kind (timeout, http_5xx, ...)
    http_status int,                    -- of the last HTTP exchange of the call (none on a transport error)
    latency_ms  int not null,
    at          timestamptz not null
);
create index channel_calls_payment on channel_calls (payment_id, id);
