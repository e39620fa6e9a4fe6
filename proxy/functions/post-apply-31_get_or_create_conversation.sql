-- convkey.get_or_create_conversation(p_business_id, p_customer_wa_id, p_provider, p_lead_id,
--     p_phone_e164)
--     -> TABLE(conversation_id bigint, canonical_key text, created boolean)
-- Proxy of the shard function of the same name and signature. It runs whole on the shard that
-- owns p_business_id, in one remote call and the shard's own transaction: the partition is
-- convkey._business_hash(p_business_id) & (partitions - 1).
-- Defaults are evaluated here and sent, so they equal the shard's (tests/test_proxy.py compares
-- every signature, default and result type with the shard's).
-- Locks: none here (the shard function's own). Raises: the shard's SQLSTATEs unchanged (PL/Proxy
-- prefixes the message with the function and shard and the hint with "Remote hint:").
CREATE OR REPLACE FUNCTION convkey.get_or_create_conversation(
    p_business_id bigint,
    p_customer_wa_id text,
    p_provider text DEFAULT 'baileys',
    p_lead_id bigint DEFAULT NULL,
    p_phone_e164 text DEFAULT NULL)
RETURNS TABLE(conversation_id bigint, canonical_key text, created boolean)
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON convkey._business_hash(p_business_id);
$$;

COMMENT ON FUNCTION convkey.get_or_create_conversation(bigint,text,text,bigint,text) IS
    'Proxy: runs convkey.get_or_create_conversation on the shard that owns p_business_id.';
