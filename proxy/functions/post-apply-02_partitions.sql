-- convkey._partitions() -> TABLE(partition integer, connstr text)
-- The partitions of the PL/Proxy cluster 'convkey' in order, from the options p0, p1, ... of
-- SERVER convkey (FOREIGN DATA WRAPPER plproxy), as `convkey shards add` wrote them. Several
-- partitions name the same shard (more partitions than servers); PL/Proxy opens one connection
-- per distinct connect string. Options that are not pN (plproxy settings) are left out.
-- No rows when the cluster is not configured yet.
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._partitions()
RETURNS TABLE(partition integer, connstr text)
LANGUAGE sql
STABLE
AS $$
    SELECT substr(o.option_name, 2)::integer, o.option_value
      FROM pg_catalog.pg_foreign_server s
      JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
     CROSS JOIN LATERAL pg_catalog.pg_options_to_table(s.srvoptions) o
     WHERE s.srvname = 'convkey' AND w.fdwname = 'plproxy' AND o.option_name ~ '^p[0-9]+$'
     ORDER BY 1
$$;

COMMENT ON FUNCTION convkey._partitions() IS
    'Partitions of the PL/Proxy cluster convkey and their connect strings '
    '(SERVER convkey options p0..pN).';
