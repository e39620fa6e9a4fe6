-- convkey.display_name(p_lead_name text, p_push_name text, p_name text, p_peer_name text,
--     p_phone text, p_fallback text DEFAULT 'ללא שם') RETURNS text
-- The name a UI shows for a person: the first usable of the CRM lead name, the WhatsApp push
-- name, a contact name, a peer name, the phone, else p_fallback. Names come back trimmed.
--   * Blank values are skipped: empty, or only whitespace, zero-width or direction marks and
--     fillers (convkey._blank_chars).
--   * A push name that contains '@' or is only a phone number (digits, '+', spaces, dashes,
--     parentheses) is skipped; a name or peer name that contains '@' or is only digits is
--     skipped, so LID digits never show as a name.
--   * The phone: a phone JID (s.whatsapp.net, c.us, hosted; agent and device dropped), E.164 or
--     bare international digits (7 to 15, the first not 0) become '+digits'. A LID in any form
--     and national formats are skipped: the SQL side does not guess a country (the runner's
--     convkey.phone.format_for_display formats E.164 for people).
-- LANGUAGE sql, one expression and not STRICT, so the planner inlines it into the query that
-- calls it (a view over thousands of rows) and folds the patterns to constants.
-- For the same reason it is the one public function that is not SECURITY DEFINER (a SET clause or
-- SECURITY DEFINER stops inlining): it reads no table, and the roles may execute it and its helper
-- convkey._blank_chars() (functions/post-apply-90_grants.sql).
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey.display_name(
    p_lead_name text,
    p_push_name text,
    p_name text,
    p_peer_name text,
    p_phone text,
    p_fallback text DEFAULT 'ללא שם')
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        nullif(btrim(p_lead_name, convkey._blank_chars()), ''),
        CASE WHEN p_push_name !~ ('@|^[' || convkey._blank_chars() || '0-9+()-]*$')
             THEN btrim(p_push_name, convkey._blank_chars()) END,
        CASE WHEN p_name !~ ('@|^[' || convkey._blank_chars() || '0-9]*$')
             THEN btrim(p_name, convkey._blank_chars()) END,
        CASE WHEN p_peer_name !~ ('@|^[' || convkey._blank_chars() || '0-9]*$')
             THEN btrim(p_peer_name, convkey._blank_chars()) END,
        '+' || substring(p_phone FROM
            ('(?i)^[' || convkey._blank_chars() || ']*\+?([1-9][0-9]{6,14})'
             || '(?:(?:[._][0-9]{1,3})?(?::[0-9]{1,3})?@(?:s\.whatsapp\.net|c\.us|hosted))?'
             || '[' || convkey._blank_chars() || ']*$')),
        p_fallback)
$$;

COMMENT ON FUNCTION convkey.display_name(text, text, text, text, text, text) IS
    'The name to show: lead name > push name > name > peer name > phone (+digits, never a LID) > '
    'p_fallback. Blank, phone-only and @-containing push names and digit-only names are skipped.';
