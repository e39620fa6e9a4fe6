-- convkey.parse_wa_id(p_raw text)
--   RETURNS TABLE(kind text, jid_user text, device integer, phone_e164 text, lid text)
-- Public face of the identifier grammar (see convkey._parse_wa_id for the rules):
-- 'pn' (phone JID or international phone), 'lid', 'bsuid', 'group', 'status', 'broadcast',
-- 'newsletter', 'bot'.
-- Locks: none. Raises 22023 for malformed input, 22001 over 256 characters.
CREATE OR REPLACE FUNCTION convkey.parse_wa_id(p_raw text)
RETURNS TABLE(kind text, jid_user text, device integer, phone_e164 text, lid text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.kind, p.jid_user, p.device, p.phone_e164, p.lid FROM convkey._parse_wa_id(p_raw, 'p_raw') AS p
$$;

COMMENT ON FUNCTION convkey.parse_wa_id(text) IS
    'Parse a WhatsApp identifier into (kind, jid_user, device, phone_e164, lid). kind: pn, lid, bsuid, group, '
    'status, broadcast, newsletter, bot. Raises 22023 on malformed input, 22001 over 256 characters.';
