-- convkey.display_name(p_lead_name, p_push_name, p_name, p_peer_name, p_phone, p_fallback)
--     -> text
-- Proxy of the shard function of the same name and signature. It names no business
-- and reads no table, so it runs on any one shard (RUN ON ANY): the shards' copy stays the one
-- definition, with no second copy here to drift from it.
-- Defaults are evaluated here and sent, so they equal the shard's (tests/test_proxy.py compares
-- every signature, default and result type with the shard's).
-- Locks: none here (the shard function's own). Raises: the shard's SQLSTATEs unchanged (PL/Proxy
-- prefixes the message with the function and shard and the hint with "Remote hint:").
CREATE OR REPLACE FUNCTION convkey.display_name(
    p_lead_name text,
    p_push_name text,
    p_name text,
    p_peer_name text,
    p_phone text,
    p_fallback text DEFAULT 'ללא שם')
RETURNS text
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ANY;
$$;

COMMENT ON FUNCTION convkey.display_name(text,text,text,text,text,text) IS
    'Proxy: runs convkey.display_name on any shard (no business).';
