-- Why: undo 0005.
DROP TABLE IF EXISTS convkey.backfill_cursor, convkey.backfill_row;
DROP TYPE IF EXISTS convkey.backfill_candidate;
