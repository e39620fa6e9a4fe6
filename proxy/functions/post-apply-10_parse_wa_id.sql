-- convkey.parse_wa_id(p_raw)
--     -> TABLE(kind text, jid_user text, device integer, phone_e164 text, lid text)
-- Proxy of the shard function of the same name and signature. It names no business
-- and reads no table, so it runs on any one shard (RUN ON ANY): the shards' copy stays the one
-- definition, with no second copy here to drift from it.
-- Defaults are evaluated here and sent, so they equal the shard's (tests/test_proxy.py compares
-- every signature, default and result type with the shard's).
-- Locks: none here (the shard function's own). Raises: the shard's SQLSTATEs unchanged (PL/Proxy
-- prefixes the message with the function and shard and the hint with "Remote hint:").
CREATE OR REPLACE FUNCTION convkey.parse_wa_id(
    p_raw text)
RETURNS TABLE(kind text, jid_user text, device integer, phone_e164 text, lid text)
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ANY;
$$;

COMMENT ON FUNCTION convkey.parse_wa_id(text) IS
    'Proxy: runs convkey.parse_wa_id on any shard (no business).';
