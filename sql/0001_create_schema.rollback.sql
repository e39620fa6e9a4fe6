-- Why: undo 0001 by dropping the package schema and everything in it (post-apply functions,
-- triggers, views): afterwards only yoyo's own bookkeeping tables remain.
DROP SCHEMA IF EXISTS convkey CASCADE;
