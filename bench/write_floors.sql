-- What PostgreSQL alone needs for the writes of two nightly steps (issue
-- 22): the statements the first stage assignment and the points expiry
-- cannot do without, each on its own and rolled back, next to the read pass
-- the expiry is measured against. Run on a throwaway copy of a
-- bench_chain.py database before its chain (the rolled-back rows leave dead
-- tuples: VACUUM after), as a superuser for the rows "without foreign-key
-- checks" (they only show how much of a write those checks are; as another
-- user they fail and the rest goes on):
--
--   psql -d mlm_copy -v company=3 -f bench/write_floors.sql
--   psql -d mlm_copy -c 'VACUUM ANALYZE'
--
-- Not a test: timings depend on the machine.
\timing on
\set ON_ERROR_STOP off

-- Each write below runs twice, with and without foreign-key checks.
PREPARE expire_entries AS
INSERT INTO loyalty_mlm_ledger (
    date, partner_id, card_id, card_code, program_id, company_id, points,
    kind, res_model, res_id, user_id, reason, reason_code, reason_values,
    expired_lot_id, remaining, unallocated,
    create_uid, create_date, write_uid, write_date)
SELECT now(), partner_id, card_id, card_code, program_id, company_id,
       -remaining, 'expire', 'loyalty.mlm.ledger', id, 1, 'expired',
       'expired', jsonb_build_object('date', date::date::text), id, 0, 0,
       1, now(), 1, now()
  FROM loyalty_mlm_ledger
 WHERE company_id = :company AND points > 0 AND remaining > 0
   AND expiry_date < CURRENT_DATE AND card_id IS NOT NULL;
PREPARE stage_history AS
INSERT INTO loyalty_mlm_stage_history (
    partner_id, from_stage_id, to_stage_id, date, reason_code, reason,
    automatic, user_id, company_id)
SELECT id, NULL, (SELECT MIN(id) FROM loyalty_mlm_stage), now(), 'manual',
       NULL, TRUE, 1, :company
  FROM res_partner
 WHERE customer_rank > 0;

\echo '== expiry: the read pass over the expired lots (the floor), twice'
SELECT COUNT(*) AS cards, SUM(n) AS lots FROM (
    SELECT card_id, SUM(remaining), COUNT(*) AS n
      FROM loyalty_mlm_ledger
     WHERE company_id = :company AND points > 0 AND remaining > 0
       AND expiry_date < CURRENT_DATE AND card_id IS NOT NULL
  GROUP BY card_id) lots;
\g

\echo '== expiry: one expire entry per expired lot, nothing else'
BEGIN;
EXECUTE expire_entries;
ROLLBACK;

\echo '== expiry: the same entries without foreign-key checks (superuser)'
BEGIN;
SET LOCAL session_replication_role = replica;
EXECUTE expire_entries;
ROLLBACK;

\echo '== expiry: closing the expired lots, nothing else'
BEGIN;
UPDATE loyalty_mlm_ledger SET remaining = 0
 WHERE company_id = :company AND points > 0 AND remaining > 0
   AND expiry_date < CURRENT_DATE AND card_id IS NOT NULL;
ROLLBACK;

\echo '== stages: every customer''s stage key and date, nothing else'
BEGIN;
UPDATE res_partner p
   SET mlm_stage_id = COALESCE(p.mlm_stage_id, '{}')
           || jsonb_build_object(:'company', 1 + p.id % 6),
       mlm_stage_date = COALESCE(p.mlm_stage_date, '{}')
           || jsonb_build_object(:'company', to_char(now(), 'YYYY-MM-DD HH24:MI:SS')),
       write_uid = 1, write_date = now()
 WHERE p.customer_rank > 0;
ROLLBACK;

\echo '== stages: one history row per customer, nothing else'
BEGIN;
EXECUTE stage_history;
ROLLBACK;

\echo '== stages: the same history rows without foreign-key checks (superuser)'
BEGIN;
SET LOCAL session_replication_role = replica;
EXECUTE stage_history;
ROLLBACK;

