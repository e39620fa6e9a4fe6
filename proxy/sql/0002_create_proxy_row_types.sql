-- Why: the proxy holds no tables, but DBAs, `convkey stats` and the demo read the shards' tables
-- and views through it (views over RUN ON ALL functions). Those functions return the shard rows
-- as these composite types, one per shard table or view, with the same columns in the same
-- order. A type lives in a migration, not in a post-apply file, so that a column the shards gain
-- later is added here with ALTER TYPE ... ADD ATTRIBUTE in a new migration (a function's result
-- type cannot change under CREATE OR REPLACE). tests/test_proxy.py fails when a shard table or
-- view and its type here differ.
-- depends: 0001_create_proxy_schema

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TYPE convkey.whatsapp_conversation_row AS (
    id                       bigint,
    business_id              bigint,
    canonical_key            text,
    lead_id                  bigint,
    phone_e164               text,
    customer_wa_id           text,
    provider                 text,
    push_name                text,
    lead_name                text,
    is_open                  boolean,
    session_started_at       timestamptz,
    last_message_at          timestamptz,
    last_customer_message_at timestamptz,
    last_read_at             timestamptz,
    summary_created          boolean,
    summary                  text,
    merged_into_id           bigint,
    created_at               timestamptz,
    updated_at               timestamptz
);

CREATE TYPE convkey.whatsapp_message_row AS (
    id                  bigint,
    business_id         bigint,
    conversation_id     bigint,
    direction           text,
    provider            text,
    provider_message_id text,
    body                text,
    source              text,
    wa_id               text,
    sent_at             timestamptz,
    created_at          timestamptz
);

CREATE TYPE convkey.identity_row AS (
    business_id       bigint,
    kind              text,
    value             text,
    conversation_id   bigint,
    pending_person_id bigint,
    source            text,
    created_at        timestamptz,
    updated_at        timestamptz
);

CREATE TYPE convkey.identity_conflict_row AS (
    business_id           bigint,
    kind                  text,
    value                 text,
    other_conversation_id bigint,
    owner_conversation_id bigint,
    rule                  text,
    first_seen_at         timestamptz,
    last_seen_at          timestamptz,
    seen_count            bigint
);

CREATE TYPE convkey.conversation_merge_row AS (
    id                bigint,
    business_id       bigint,
    primary_id        bigint,
    duplicate_id      bigint,
    reason            text,
    triggered_by      jsonb,
    merged_at         timestamptz,
    moved_message_ids bigint[],
    moved_identities  jsonb,
    primary_before    jsonb,
    duplicate_before  jsonb,
    primary_after     jsonb,
    undone_at         timestamptz
);

CREATE TYPE convkey.conversation_separation_row AS (
    business_id bigint,
    low_id      bigint,
    high_id     bigint,
    merge_id    bigint,
    created_at  timestamptz
);

CREATE TYPE convkey.backfill_row_row AS (
    business_id     bigint,
    conversation_id bigint,
    status          text,
    kinds           text[],
    vals            text[],
    reason          text,
    updated_at      timestamptz
);

CREATE TYPE convkey.backfill_cursor_row AS (
    business_id      bigint,
    phase            text,
    last_business_id bigint,
    last_id          bigint,
    started_at       timestamptz,
    updated_at       timestamptz,
    finished_at      timestamptz
);

CREATE TYPE convkey.conversation_thread_row AS (
    id                     bigint,
    business_id            bigint,
    canonical_key          text,
    display_name           text,
    display_phone          text,
    lead_id                bigint,
    is_open                boolean,
    last_message_at        timestamptz,
    message_count          bigint,
    unread_count           bigint,
    last_message_preview   text,
    last_message_direction text
);

CREATE TYPE convkey.dedup_health_row AS (
    business_id                 bigint,
    live_conversations          bigint,
    tombstones                  bigint,
    live_with_key               bigint,
    live_without_key            bigint,
    duplicate_keys              bigint,
    with_lead                   bigint,
    lid_only_waiting            bigint,
    identities_lead             bigint,
    identities_phone            bigint,
    identities_lid              bigint,
    identities_bsuid            bigint,
    identities_pending          bigint,
    merges_total                bigint,
    merges_24h                  bigint,
    merges_by_reason            jsonb,
    identity_conflicts          bigint,
    conflicts_different_lead    bigint,
    conflicts_moved             bigint,
    unmerges                    bigint,
    links_blocked_by_separation bigint
);

COMMENT ON TYPE convkey.whatsapp_conversation_row IS 'A row of convkey.whatsapp_conversation on a shard.';
COMMENT ON TYPE convkey.whatsapp_message_row IS 'A row of convkey.whatsapp_message on a shard.';
COMMENT ON TYPE convkey.identity_row IS 'A row of convkey.identity on a shard.';
COMMENT ON TYPE convkey.identity_conflict_row IS 'A row of convkey.identity_conflict on a shard.';
COMMENT ON TYPE convkey.conversation_merge_row IS 'A row of convkey.conversation_merge on a shard.';
COMMENT ON TYPE convkey.conversation_separation_row IS 'A row of convkey.conversation_separation on a shard.';
COMMENT ON TYPE convkey.backfill_row_row IS 'A row of convkey.backfill_row on a shard.';
COMMENT ON TYPE convkey.backfill_cursor_row IS 'A row of convkey.backfill_cursor on a shard.';
COMMENT ON TYPE convkey.conversation_thread_row IS 'A row of the view convkey.conversation_thread on a shard.';
COMMENT ON TYPE convkey.dedup_health_row IS 'A row of the view convkey.dedup_health on a shard (one business).';
