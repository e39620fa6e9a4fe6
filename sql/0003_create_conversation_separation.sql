-- Why: an unmerge must stick. After convkey.unmerge() splits two conversations, automatic links
-- (messages, backfill, history sync) that would join them again are not applied; they are
-- counted instead (identity_conflict rule 'separated'). An explicit
-- link_identity(..., p_source => 'manual') removes the separation. One row per unordered pair.
-- depends: 0002_create_core_tables

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TABLE convkey.conversation_separation (
    business_id bigint NOT NULL,
    low_id      bigint NOT NULL,
    high_id     bigint NOT NULL,
    merge_id    bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_conversation_separation PRIMARY KEY (business_id, low_id, high_id),
    CONSTRAINT fk_conversation_separation_low
        FOREIGN KEY (business_id, low_id) REFERENCES convkey.whatsapp_conversation (business_id, id),
    CONSTRAINT fk_conversation_separation_high
        FOREIGN KEY (business_id, high_id) REFERENCES convkey.whatsapp_conversation (business_id, id),
    CONSTRAINT fk_conversation_separation_merge
        FOREIGN KEY (business_id, merge_id) REFERENCES convkey.conversation_merge (business_id, id),
    CONSTRAINT ck_conversation_separation_order CHECK (low_id < high_id)
);

CREATE INDEX ix_conversation_separation_high ON convkey.conversation_separation (business_id, high_id);

COMMENT ON TABLE convkey.conversation_separation IS
    'Pairs of conversations an unmerge split: automatic links never join them again (manual links do).';
