-- Why: every convkey object lives in one package schema, so a DBA can see, grant and drop the
-- whole package at once. Post-apply function files (functions/) need the schema to exist.
-- Rolling this migration back drops the schema with CASCADE, which also removes every
-- post-apply object (yoyo never rolls those back itself).
-- depends:

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE SCHEMA IF NOT EXISTS convkey;

COMMENT ON SCHEMA convkey IS
    'convkey: one WhatsApp conversation per person (canonical keys, identity graph, merges).';
