-- The argument checks of the webhook and get-or-create paths (this one, convkey._check_provider,
-- convkey._check_timestamp) return their argument, so that a caller assigns them
-- (p_x := convkey._check_x(p_x)): an assignment is a PL/pgSQL simple expression, where PERFORM
-- ran a query through SPI on every call (3 to 7 us each in the bench's profile, on top of the
-- check itself). They returned void before, and a return type cannot be replaced in place: the
-- void versions are dropped once, here, in the same transaction that re-creates them.
DO $$
DECLARE
    v_old regprocedure;
BEGIN
    FOR v_old IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'convkey'::regnamespace AND p.prorettype = 'void'::regtype
           AND p.proname IN ('_check_business_id', '_check_provider', '_check_timestamp')
    LOOP
        EXECUTE format('DROP FUNCTION %s', v_old);
    END LOOP;
END;
$$;

-- convkey._check_business_id(p_business_id bigint) RETURNS bigint
-- Every API function names one business; it must be a positive integer. Returns it.
-- Locks: none. Raises 22023 (NULL or not positive).
CREATE OR REPLACE FUNCTION convkey._check_business_id(p_business_id bigint)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_business_id IS NULL OR p_business_id <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_business_id must be a positive integer, got %s', coalesce(p_business_id::text, 'NULL')),
            HINT = 'Every convkey call names the business (tenant) it works for.';
    END IF;
    RETURN p_business_id;
END;
$$;

COMMENT ON FUNCTION convkey._check_business_id(bigint) IS 'Internal: 22023 unless p_business_id is a positive integer.';
