-- Why: the backfill of legacy rows must be resumable and report exactly what it did. Rows it
-- has read are staged with the identities derived from them (backfill_row): rows that collide
-- with another row or an existing identity wait there for the merge phase, rows that cannot be
-- resolved stay listed with the reason. backfill_cursor keeps each phase's position, updated in
-- the same transaction as each batch, so a killed run continues where it stopped.
-- depends: 0003_create_conversation_separation

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TABLE convkey.backfill_row (
    business_id     bigint NOT NULL,
    conversation_id bigint NOT NULL,
    status          text NOT NULL,
    kinds           text[] NOT NULL DEFAULT '{}',
    vals            text[] NOT NULL DEFAULT '{}',
    reason          text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_backfill_row PRIMARY KEY (business_id, conversation_id),
    CONSTRAINT fk_backfill_row_conversation
        FOREIGN KEY (business_id, conversation_id) REFERENCES convkey.whatsapp_conversation (business_id, id),
    CONSTRAINT ck_backfill_row_status CHECK (status IN ('deferred', 'unresolvable'))
);

COMMENT ON TABLE convkey.backfill_row IS
    'Legacy rows the backfill read but could not resolve yet: deferred (collide, wait for the merge phase) '
    'or unresolvable (reason), with the identities derived from them.';

CREATE INDEX ix_backfill_row_status ON convkey.backfill_row (status, business_id, conversation_id);

CREATE TABLE convkey.backfill_cursor (
    business_id  bigint NOT NULL,
    phase        text NOT NULL,
    last_business_id bigint NOT NULL DEFAULT 0,
    last_id      bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CONSTRAINT pk_backfill_cursor PRIMARY KEY (business_id, phase),
    CONSTRAINT ck_backfill_cursor_phase CHECK (phase IN ('resolve', 'merge'))
);

COMMENT ON TABLE convkey.backfill_cursor IS
    'Position of each backfill phase (business_id 0: a run over all businesses); finished_at NULL: resumable.';

CREATE TYPE convkey.backfill_candidate AS (
    business_id     bigint,
    conversation_id bigint,
    kinds           text[],
    vals            text[],
    reason          text
);

COMMENT ON TYPE convkey.backfill_candidate IS
    'A legacy row of one backfill batch with the identities derived from it (or why it has none).';
