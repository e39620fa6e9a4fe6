-- convkey._blank_chars() RETURNS text
-- The characters that do not count as a name: ASCII whitespace, no-break and typographic
-- spaces, zero-width characters, direction marks, embeddings and isolates, the BOM, the soft
-- hyphen, and the Hangul and Braille fillers people use as "invisible" WhatsApp names.
-- One string, usable both as btrim()'s character set and inside a regex bracket expression
-- (no ']', '^', '-' or '\' in it). LANGUAGE sql and IMMUTABLE: callers that are inlined get it
-- folded to a constant at plan time.
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._blank_chars()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT E' \t\n\r\x0B\f'
        || E'\u00A0\u00AD\u034F\u061C\u115F\u1160\u1680\u180E'
        || E'\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A'
        || E'\u200B\u200C\u200D\u200E\u200F'
        || E'\u2028\u2029\u202A\u202B\u202C\u202D\u202E\u202F'
        || E'\u205F\u2060\u2061\u2062\u2063\u2064'
        || E'\u2066\u2067\u2068\u2069\u206A\u206B\u206C\u206D\u206E\u206F'
        || E'\u2800\u3000\u3164\uFEFF\uFFA0'
$$;

COMMENT ON FUNCTION convkey._blank_chars() IS
    'Internal: whitespace, zero-width, direction-mark and filler characters that never make a name.';
