-- paycore schema v13: a merchant's default webhook endpoint (issue 14, the portal's "webhook
-- endpoint"). A payment created without notify_url is notified here (the engine copies it into
-- the payment when it is created, so a later change never redirects that payment's webhooks).
-- Not the same as webhook_url (008): that one receives the daily settlement announcements.
alter table merchants add column default_notify_url text;
