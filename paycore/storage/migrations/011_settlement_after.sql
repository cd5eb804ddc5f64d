-- Shares (split) and payouts are lines of the merchant's statement (issue 16, item 4).
-- 012 (partitioning) creates settlement_lines with the same check, so a fresh database
-- gets it there; this one widens the check of a database that already had 012 applied.
alter table settlement_lines drop constraint if exists settlement_lines_kind_check;
alter table settlement_lines add constraint settlement_lines_kind_check
    check (kind in ('payment', 'refund', 'adjustment', 'split', 'payout'));
