-- convkey._parse_wa_id(p_raw text, p_param text, OUT kind text, OUT jid_user text,
--     OUT device integer, OUT phone_e164 text, OUT lid text) RETURNS record
-- The WhatsApp identifier grammar, defined once: user[.agent|_agent][:device]@server,
-- case-insensitive for ASCII letters only (the "C" collation folds case, so no database locale
-- turns a look-alike such as 'İ' or the Kelvin sign into an ASCII letter), surrounding whitespace ignored.
--   s.whatsapp.net, c.us, hosted -> 'pn' (phone '+user', agent and device dropped)
--   lid, hosted.lid              -> 'lid' (the digits are never a phone)
--   g.us -> 'group'; status@broadcast -> 'status'; other broadcast -> 'broadcast';
--   newsletter -> 'newsletter'; bot -> 'bot' (none of these is a 1:1 customer)
--   US.13491208655302741918 (two letters, optional .ENT, dot, digits) -> 'bsuid'
--   no '@': a phone, accepted only when already international (see convkey._normalize_phone).
-- p_param names the caller's parameter in error messages.
-- Locks: none. Raises 22023 for malformed input (NULL, empty, unknown server, bad device,
-- impossible phone), 22001 when longer than 256 characters.
-- One row, not a set: callers assign it in an expression (v := convkey._parse_wa_id(...)), which
-- PL/pgSQL evaluates without starting a query; a set-returning function costs a query and a
-- tuplestore per call (about 150 us of a webhook call when it returned TABLE).
-- Patterns use unbounded repetitions, with the lengths checked apart, and only the ~ operator
-- (no regexp_match, which returns the groups): PostgreSQL's regex engine runs a bounded
-- repetition such as [0-9]{1,32}, or a match that must report its groups, several times slower
-- (regexp_match here cost 19 us a call, as much as the rest of the function).

-- Before 0.2 it returned TABLE (a set), and CREATE OR REPLACE cannot change that: drop the old one.
DO $retire$
BEGIN
    IF (SELECT p.proretset FROM pg_catalog.pg_proc AS p
         WHERE p.oid = pg_catalog.to_regprocedure('convkey._parse_wa_id(text, text)')) THEN
        DROP FUNCTION convkey._parse_wa_id(text, text);
    END IF;
END;
$retire$;

CREATE OR REPLACE FUNCTION convkey._parse_wa_id(
    p_raw text,
    p_param text,
    OUT kind text,
    OUT jid_user text,
    OUT device integer,
    OUT phone_e164 text,
    OUT lid text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_raw    text;
    v_at     int;
    v_user   text;
    v_server text;
    v_head   text;
    v_device text;
BEGIN
    IF p_raw IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s must not be NULL', p_param),
            HINT = 'Pass a WhatsApp JID (972501234567@s.whatsapp.net, 82399031480511@lid), an E.164 phone or a BSUID.';
    END IF;
    IF length(p_raw) > 256 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = format('%s is longer than 256 characters (%s)', p_param, length(p_raw)),
            HINT = 'Identifiers are at most 256 characters.';
    END IF;
    v_raw := lower(btrim(p_raw, E' \t\r\n') COLLATE "C");
    v_at := position('@' IN v_raw);

    IF v_at = 0 THEN
        IF v_raw ~ '^[a-z]{2}\.' THEN
            kind := 'bsuid';
            jid_user := convkey._bsuid_value(v_raw, p_param);
            RETURN;
        END IF;
        IF v_raw = '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('%s is empty', p_param),
                HINT = 'Pass a WhatsApp JID, an E.164 phone or a BSUID.';
        END IF;
        kind := 'pn';
        jid_user := ltrim(v_raw, '+');
        phone_e164 := convkey._normalize_phone(v_raw, p_param);
        RETURN;
    END IF;

    v_user := left(v_raw, v_at - 1);
    v_server := substr(v_raw, v_at + 1);
    IF v_server IN ('s.whatsapp.net', 'c.us', 'hosted', 'lid', 'hosted.lid') THEN
        -- digits (1-32), then optionally . or _ and an agent (1-3 digits), then optionally
        -- : and a device (1-3 digits)
        v_head := split_part(v_user, ':', 1);
        v_device := split_part(v_user, ':', 2);
        jid_user := split_part(split_part(v_head, '.', 1), '_', 1);
        IF v_user !~ '^[0-9]+([._][0-9]+)?(:[0-9]+)?$' OR length(jid_user) > 32
           OR length(v_head) - length(jid_user) > 4 OR length(v_device) > 3 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('%s is not a valid WhatsApp user JID: %s', p_param, convkey._mask(p_raw)),
                DETAIL = 'Expected digits[.agent|_agent][:device]@server with a small numeric device.',
                HINT = 'Pass the JID exactly as WhatsApp sent it, e.g. 972501234567:12@s.whatsapp.net.';
        END IF;
        device := nullif(v_device, '')::int;
        IF v_server IN ('lid', 'hosted.lid') THEN
            kind := 'lid';
            lid := jid_user;
        ELSE
            kind := 'pn';
            phone_e164 := convkey._normalize_phone(jid_user, p_param);
        END IF;
        RETURN;
    END IF;

    IF v_user !~ '^[0-9a-z._:-]+$' OR length(v_user) > 128 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s has an empty or malformed user part: %s', p_param, convkey._mask(p_raw)),
            HINT = 'Pass the JID exactly as WhatsApp sent it.';
    END IF;
    kind := CASE v_server
        WHEN 'g.us' THEN 'group'
        WHEN 'broadcast' THEN CASE WHEN v_user = 'status' THEN 'status' ELSE 'broadcast' END
        WHEN 'newsletter' THEN 'newsletter'
        WHEN 'bot' THEN 'bot'
    END;
    IF kind IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s has an unknown WhatsApp server: %s', p_param, convkey._mask(p_raw)),
            DETAIL = 'Known servers: s.whatsapp.net, c.us, hosted, lid, hosted.lid, g.us, broadcast, newsletter, bot.',
            HINT = 'Pass the JID exactly as WhatsApp sent it.';
    END IF;
    jid_user := v_user;
END;
$$;

COMMENT ON FUNCTION convkey._parse_wa_id(text, text) IS
    'Internal: convkey.parse_wa_id with the caller''s parameter name in its error messages.';
