-- convkey.conversation_thread() -> SETOF convkey.conversation_thread_row
-- and the view convkey.conversation_thread over it.
-- The inbox rows of every shard (the shard view convkey.conversation_thread, RUN ON ALL: once per
-- shard, results concatenated; a business's threads all come from its one shard). Queries written
-- for one database, `WHERE business_id = $1 ORDER BY last_message_at DESC NULLS LAST LIMIT n`
-- (convkey.Client.conversation_threads, the demo), run unchanged; the filter and the limit apply
-- here, after every shard listed all its threads: for the demo and DBAs. An inbox under load asks
-- the shard of its business directly.
-- The view shows a member of convkey_readonly (not a superuser) only the rows of the business
-- named by the session setting convkey.business_id, and nothing when it is not set, as row-level
-- security does on a shard: the proxy reaches the shards as their admin user, so it filters here.
-- Locks: ACCESS SHARE on the shards' tables, for one statement. Raises: nothing of its own.
CREATE OR REPLACE FUNCTION convkey.conversation_thread()
RETURNS SETOF convkey.conversation_thread_row
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ALL;
    SELECT id, business_id, canonical_key, display_name, display_phone, lead_id, is_open,
           last_message_at, message_count, unread_count, last_message_preview, last_message_direction
      FROM convkey.conversation_thread;
$$;

COMMENT ON FUNCTION convkey.conversation_thread() IS
    'Inbox rows of every shard (the shard view convkey.conversation_thread, RUN ON ALL).';

CREATE OR REPLACE VIEW convkey.conversation_thread WITH (security_barrier) AS
SELECT t.* FROM convkey.conversation_thread() AS t
 WHERE t.business_id = nullif(pg_catalog.current_setting('convkey.business_id', true), '')::bigint
    OR NOT pg_catalog.pg_has_role('convkey_readonly', 'USAGE')
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user);

COMMENT ON VIEW convkey.conversation_thread IS
    'Read-only: convkey.conversation_thread of every shard (convkey.conversation_thread(), RUN ON ALL).';
