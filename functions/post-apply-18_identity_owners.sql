-- convkey._identity_owners(p_business_id bigint, p_kinds text[], p_values text[]) RETURNS bigint[]
-- For n identities, 2n entries: the owning conversation of each (NULL: none, or a pending
-- person), then the pending person of each (NULL: none, or a conversation). One scalar lookup
-- per identity, so each lookup's plan is cached (a join over unnest() was planned per call).
-- Locks: none. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._identity_owners(p_business_id bigint, p_kinds text[], p_values text[])
RETURNS bigint[]
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_n       int := cardinality(p_kinds);
    v_out     bigint[] := array_fill(NULL::bigint, ARRAY[2 * cardinality(p_kinds)]);
    v_conv    bigint;
    v_pending bigint;
BEGIN
    FOR v_i IN 1 .. v_n LOOP
        SELECT i.conversation_id, i.pending_person_id INTO v_conv, v_pending FROM convkey.identity i
         WHERE i.business_id = p_business_id AND i.kind = p_kinds[v_i] AND i.value = p_values[v_i];
        v_out[v_i] := v_conv;
        v_out[v_n + v_i] := v_pending;
    END LOOP;
    RETURN v_out;
END;
$$;

COMMENT ON FUNCTION convkey._identity_owners(bigint, text[], text[]) IS
    'Internal: owning conversation and pending person of each identity (2n entries, cached plans).';
