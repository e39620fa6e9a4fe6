-- convkey.resolve_conversation_id(p_business_id bigint, p_conversation_id bigint) RETURNS bigint
-- Follows tombstones (merged_into_id) to the live conversation, so an application holding an
-- old id never loses the thread. A live id returns itself.
-- Locks: none. Raises 22023 (bad ids), P0002 (no such conversation in this business).
CREATE OR REPLACE FUNCTION convkey.resolve_conversation_id(p_business_id bigint, p_conversation_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT convkey._live_conversation(p_business_id, p_conversation_id, 'p_conversation_id')
$$;

COMMENT ON FUNCTION convkey.resolve_conversation_id(bigint, bigint) IS
    'The live conversation an id ended in (follows merges). 22023 bad ids, P0002 unknown in this business.';
