-- convkey.update_session_activity(p_business_id, p_customer_wa_id, p_direction, p_provider,
--     p_lead_id, p_phone_e164, p_at)
--     -> bigint
-- Proxy of the shard function of the same name and signature. It runs whole on the shard that
-- owns p_business_id, in one remote call and the shard's own transaction: the partition is
-- convkey._business_hash(p_business_id) & (partitions - 1).
-- Defaults are evaluated here and sent, so they equal the shard's (tests/test_proxy.py compares
-- every signature, default and result type with the shard's).
-- Locks: none here (the shard function's own). Raises: the shard's SQLSTATEs unchanged (PL/Proxy
-- prefixes the message with the function and shard and the hint with "Remote hint:").
CREATE OR REPLACE FUNCTION convkey.update_session_activity(
    p_business_id bigint,
    p_customer_wa_id text,
    p_direction text DEFAULT 'in',
    p_provider text DEFAULT 'baileys',
    p_lead_id bigint DEFAULT NULL,
    p_phone_e164 text DEFAULT NULL,
    p_at timestamp with time zone DEFAULT now())
RETURNS bigint
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON convkey._business_hash(p_business_id);
$$;

COMMENT ON FUNCTION convkey.update_session_activity(
    bigint,text,text,text,bigint,text,timestamp with time zone) IS
    'Proxy: runs convkey.update_session_activity on the shard that owns p_business_id.';
