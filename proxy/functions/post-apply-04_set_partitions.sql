-- convkey._set_partitions(p_connstrs text[]) -> integer
-- Points partition i of the PL/Proxy cluster 'convkey' at p_connstrs[i + 1] and returns the
-- number of partitions. The first call creates SERVER convkey FOREIGN DATA WRAPPER plproxy with
-- options p0..pN-1 and a user mapping FOR PUBLIC (no options: each partition's connect string
-- names its user, or PL/Proxy sends the calling user's name); later calls change the options
-- in place. The count must be a power of two (PL/Proxy keeps hash & (count - 1)) and, once set,
-- stays: another count would move businesses to other partitions. `convkey shards add` calls this
-- after it checked that no partition with data changes shard; the README explains how to move one.
-- Backends pick the new options up at their next call (PL/Proxy watches the catalog).
-- Locks: the server's catalog row. Raises 22023 for a count that is not a power of two or an
-- empty connect string, 55000 for a count other than the cluster's.
CREATE OR REPLACE FUNCTION convkey._set_partitions(p_connstrs text[])
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_count   integer := coalesce(cardinality(p_connstrs), 0);
    v_current integer;
    v_options text;
BEGIN
    IF v_count = 0 OR v_count & (v_count - 1) <> 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('the number of partitions must be a power of two, got %s', v_count),
            HINT = 'Use 4, 8, 16 ... partitions: more partitions than shards, spread round-robin.';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_connstrs) c WHERE coalesce(btrim(c), '') = '') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'every partition needs a connect string',
            HINT = 'Pass one libpq connect string per partition.';
    END IF;
    SELECT count(*) INTO v_current FROM convkey._partitions();
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server s WHERE s.srvname = 'convkey') THEN
        SELECT string_agg(format('p%s %L', c.i - 1, c.connstr), ', ' ORDER BY c.i) INTO v_options
          FROM unnest(p_connstrs) WITH ORDINALITY AS c(connstr, i);
        EXECUTE format('CREATE SERVER convkey FOREIGN DATA WRAPPER plproxy OPTIONS (%s)', v_options);
    ELSIF v_current NOT IN (0, v_count) THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('the cluster has %s partitions, not %s', v_current, v_count),
            HINT = 'The partition count is fixed when the cluster is created: it decides where each business lives.';
    ELSE
        SELECT string_agg(format('%s p%s %L', CASE WHEN v_current = 0 THEN 'ADD' ELSE 'SET' END, c.i - 1, c.connstr),
                          ', ' ORDER BY c.i) INTO v_options
          FROM unnest(p_connstrs) WITH ORDINALITY AS c(connstr, i);
        EXECUTE format('ALTER SERVER convkey OPTIONS (%s)', v_options);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings m WHERE m.srvname = 'convkey' AND m.usename = 'public') THEN
        CREATE USER MAPPING FOR PUBLIC SERVER convkey;
    END IF;
    -- PL/Proxy runs a call only for a role with USAGE on the cluster's server; the proxy's own
    -- grants (post-apply-90_grants.sql) decide which functions each role may call.
    GRANT USAGE ON FOREIGN SERVER convkey TO convkey_app, convkey_readonly;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION convkey._set_partitions(text[]) IS
    'Points the partitions of the PL/Proxy cluster convkey at the given connect strings (creates SERVER '
    'convkey the first time); used by `convkey shards add`.';
