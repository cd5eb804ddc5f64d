-- Merchant secret rotation with overlap (issue 12): the secret in use has a version (its key id in
-- webhook signatures is 'k' || secret_version); the one it replaced stays valid, for request
-- signatures and as a second webhook signature, until prev_secret_expires_at, then stops on its own.
alter table merchants add column secret_version integer not null default 1;
alter table merchants add column prev_secret_enc bytea;              -- AES-GCM like secret_enc
alter table merchants add column prev_secret_expires_at timestamptz;
alter table merchants add constraint merchants_prev_secret_pair
    check ((prev_secret_enc is null) = (prev_secret_expires_at is null));
