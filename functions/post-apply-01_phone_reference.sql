-- GENERATED FILE: do not edit. Regenerate with `python -m convkey.gen_reference_sql` (PYTHONPATH=runner)
-- from runner/convkey/phone_rules.py and the metadata of phonenumbers 9.0.43;
-- tests/test_phone_reference_generated.py fails when this file is stale.
--
-- Why: the database reads phone digits itself (in WhatsApp ids) and must accept exactly the numbers
-- the runner's convkey.phone.normalize_phone accepts, spelled the same way.
--
-- A post-apply file: it runs on every `convkey migrate`, so everything is CREATE OR REPLACE.
-- The functions are LANGUAGE sql and deliberately not STRICT: the planner inlines a sql function
-- into its caller only when it is not STRICT or its body is provably strict, and a CASE is not.
-- Measured on PostgreSQL 15 over 100k rows: _phone_digits_possible costs about 3 us a call
-- inlined, about 700 us with all four STRICT. Each still returns NULL for NULL, as STRICT would.

-- convkey._phone_possible_lengths(p_country_code integer) -> smallint[]
-- The possible total digit counts (calling code + national number) of an E.164 number with this
-- country calling code; NULL for a code phonenumbers does not know. Mirrors
-- convkey.phone.possible_total_lengths (the main region of the code).
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._phone_possible_lengths(p_country_code integer)
RETURNS smallint[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE p_country_code
    WHEN 1 THEN '{11}'::smallint[]
    WHEN 7 THEN '{11,15}'::smallint[]
    WHEN 20 THEN '{10,11,12}'::smallint[]
    WHEN 27 THEN '{7,8,9,10,11,12}'::smallint[]
    WHEN 30 THEN '{12,13,14}'::smallint[]
    WHEN 31 THEN '{7,8,9,10,11,12,13}'::smallint[]
    WHEN 32 THEN '{10,11}'::smallint[]
    WHEN 33 THEN '{11}'::smallint[]
    WHEN 34 THEN '{11}'::smallint[]
    WHEN 36 THEN '{10,11}'::smallint[]
    WHEN 39 THEN '{8,9,10,11,12,13,14}'::smallint[]
    WHEN 40 THEN '{8,11}'::smallint[]
    WHEN 41 THEN '{11,14}'::smallint[]
    WHEN 43 THEN '{6,7,8,9,10,11,12,13,14,15}'::smallint[]
    WHEN 44 THEN '{9,11,12}'::smallint[]
    WHEN 45 THEN '{10}'::smallint[]
    WHEN 46 THEN '{8,9,10,11,12,14}'::smallint[]
    WHEN 47 THEN '{7,10}'::smallint[]
    WHEN 48 THEN '{8,9,10,11,12}'::smallint[]
    WHEN 49 THEN '{6,7,8,9,10,11,12,13,14,15,16,17}'::smallint[]
    WHEN 51 THEN '{10,11}'::smallint[]
    WHEN 52 THEN '{12}'::smallint[]
    WHEN 53 THEN '{8,9,10,12}'::smallint[]
    WHEN 54 THEN '{12,13}'::smallint[]
    WHEN 55 THEN '{10,11,12,13}'::smallint[]
    WHEN 56 THEN '{11,12,13}'::smallint[]
    WHEN 57 THEN '{10,12,13}'::smallint[]
    WHEN 58 THEN '{12}'::smallint[]
    WHEN 60 THEN '{10,11,12}'::smallint[]
    WHEN 61 THEN '{7,8,9,10,11,12,14}'::smallint[]
    WHEN 62 THEN '{9,10,11,12,13,14,15,16,17,18,19}'::smallint[]
    WHEN 63 THEN '{8,10,11,12,13,14,15}'::smallint[]
    WHEN 64 THEN '{7,8,9,10,11,12}'::smallint[]
    WHEN 65 THEN '{10,12,13}'::smallint[]
    WHEN 66 THEN '{10,11,12,15}'::smallint[]
    WHEN 81 THEN '{10,11,12,13,14,15,16,17,18,19}'::smallint[]
    WHEN 82 THEN '{7,8,10,11,12,13,14,15,16}'::smallint[]
    WHEN 84 THEN '{9,10,11,12}'::smallint[]
    WHEN 86 THEN '{9,10,11,12,13,14}'::smallint[]
    WHEN 90 THEN '{9,12,14,15}'::smallint[]
    WHEN 91 THEN '{10,11,12,13,14,15}'::smallint[]
    WHEN 92 THEN '{10,11,12,13,14}'::smallint[]
    WHEN 93 THEN '{11}'::smallint[]
    WHEN 94 THEN '{11}'::smallint[]
    WHEN 95 THEN '{8,9,10,11,12}'::smallint[]
    WHEN 98 THEN '{6,7,8,9,12}'::smallint[]
    WHEN 211 THEN '{12}'::smallint[]
    WHEN 212 THEN '{12}'::smallint[]
    WHEN 213 THEN '{11,12}'::smallint[]
    WHEN 216 THEN '{11}'::smallint[]
    WHEN 218 THEN '{12}'::smallint[]
    WHEN 220 THEN '{10,12}'::smallint[]
    WHEN 221 THEN '{12}'::smallint[]
    WHEN 222 THEN '{11}'::smallint[]
    WHEN 223 THEN '{11}'::smallint[]
    WHEN 224 THEN '{11,12}'::smallint[]
    WHEN 225 THEN '{13}'::smallint[]
    WHEN 226 THEN '{11}'::smallint[]
    WHEN 227 THEN '{11}'::smallint[]
    WHEN 228 THEN '{11}'::smallint[]
    WHEN 229 THEN '{13}'::smallint[]
    WHEN 230 THEN '{10,11,13}'::smallint[]
    WHEN 231 THEN '{10,11,12}'::smallint[]
    WHEN 232 THEN '{11}'::smallint[]
    WHEN 233 THEN '{11,12}'::smallint[]
    WHEN 234 THEN '{13,14,15,16,17}'::smallint[]
    WHEN 235 THEN '{11}'::smallint[]
    WHEN 236 THEN '{11}'::smallint[]
    WHEN 237 THEN '{11,12}'::smallint[]
    WHEN 238 THEN '{10}'::smallint[]
    WHEN 239 THEN '{10}'::smallint[]
    WHEN 240 THEN '{12}'::smallint[]
    WHEN 241 THEN '{10,11}'::smallint[]
    WHEN 242 THEN '{12}'::smallint[]
    WHEN 243 THEN '{10,11,12,13}'::smallint[]
    WHEN 244 THEN '{12}'::smallint[]
    WHEN 245 THEN '{10,12}'::smallint[]
    WHEN 246 THEN '{10}'::smallint[]
    WHEN 247 THEN '{8,9}'::smallint[]
    WHEN 248 THEN '{10}'::smallint[]
    WHEN 249 THEN '{12}'::smallint[]
    WHEN 250 THEN '{11,12}'::smallint[]
    WHEN 251 THEN '{12}'::smallint[]
    WHEN 252 THEN '{9,10,11,12}'::smallint[]
    WHEN 253 THEN '{11}'::smallint[]
    WHEN 254 THEN '{10,11,12,13}'::smallint[]
    WHEN 255 THEN '{12}'::smallint[]
    WHEN 256 THEN '{12}'::smallint[]
    WHEN 257 THEN '{11}'::smallint[]
    WHEN 258 THEN '{11,12}'::smallint[]
    WHEN 260 THEN '{12}'::smallint[]
    WHEN 261 THEN '{12}'::smallint[]
    WHEN 262 THEN '{12}'::smallint[]
    WHEN 263 THEN '{10,12,13}'::smallint[]
    WHEN 264 THEN '{11,12}'::smallint[]
    WHEN 265 THEN '{10,12}'::smallint[]
    WHEN 266 THEN '{11}'::smallint[]
    WHEN 267 THEN '{10,11,13}'::smallint[]
    WHEN 268 THEN '{11,12}'::smallint[]
    WHEN 269 THEN '{10}'::smallint[]
    WHEN 290 THEN '{7,8}'::smallint[]
    WHEN 291 THEN '{10}'::smallint[]
    WHEN 297 THEN '{10}'::smallint[]
    WHEN 298 THEN '{9}'::smallint[]
    WHEN 299 THEN '{9}'::smallint[]
    WHEN 350 THEN '{11}'::smallint[]
    WHEN 351 THEN '{12}'::smallint[]
    WHEN 352 THEN '{7,8,9,10,11,12,13,14}'::smallint[]
    WHEN 353 THEN '{10,11,12,13}'::smallint[]
    WHEN 354 THEN '{10,12}'::smallint[]
    WHEN 355 THEN '{9,10,11,12}'::smallint[]
    WHEN 356 THEN '{11}'::smallint[]
    WHEN 357 THEN '{11}'::smallint[]
    WHEN 358 THEN '{8,9,10,11,12,13,14,15}'::smallint[]
    WHEN 359 THEN '{9,10,11,12,15}'::smallint[]
    WHEN 370 THEN '{11}'::smallint[]
    WHEN 371 THEN '{11}'::smallint[]
    WHEN 372 THEN '{10,11,13}'::smallint[]
    WHEN 373 THEN '{11}'::smallint[]
    WHEN 374 THEN '{11}'::smallint[]
    WHEN 375 THEN '{9,10,11,12,13,14}'::smallint[]
    WHEN 376 THEN '{9,11,12}'::smallint[]
    WHEN 377 THEN '{11,12}'::smallint[]
    WHEN 378 THEN '{11,13}'::smallint[]
    WHEN 380 THEN '{12,13}'::smallint[]
    WHEN 381 THEN '{9,10,11,12,13,14,15}'::smallint[]
    WHEN 382 THEN '{11,12}'::smallint[]
    WHEN 383 THEN '{11,12,13,14,15}'::smallint[]
    WHEN 385 THEN '{10,11,12}'::smallint[]
    WHEN 386 THEN '{8,9,10,11}'::smallint[]
    WHEN 387 THEN '{11,12}'::smallint[]
    WHEN 389 THEN '{11}'::smallint[]
    WHEN 420 THEN '{12,13,14,15}'::smallint[]
    WHEN 421 THEN '{9,10,12}'::smallint[]
    WHEN 423 THEN '{10,12}'::smallint[]
    WHEN 500 THEN '{8}'::smallint[]
    WHEN 501 THEN '{10,14}'::smallint[]
    WHEN 502 THEN '{11,14}'::smallint[]
    WHEN 503 THEN '{10,11,14}'::smallint[]
    WHEN 504 THEN '{11,14}'::smallint[]
    WHEN 505 THEN '{11}'::smallint[]
    WHEN 506 THEN '{11,13}'::smallint[]
    WHEN 507 THEN '{10,11,13,14}'::smallint[]
    WHEN 508 THEN '{9,12}'::smallint[]
    WHEN 509 THEN '{11}'::smallint[]
    WHEN 590 THEN '{12}'::smallint[]
    WHEN 591 THEN '{11,12}'::smallint[]
    WHEN 592 THEN '{10}'::smallint[]
    WHEN 593 THEN '{11,12,13,14}'::smallint[]
    WHEN 594 THEN '{12}'::smallint[]
    WHEN 595 THEN '{9,10,11,12,13,14}'::smallint[]
    WHEN 596 THEN '{12}'::smallint[]
    WHEN 597 THEN '{9,10}'::smallint[]
    WHEN 598 THEN '{7,8,9,10,11,12,13,14,15,16}'::smallint[]
    WHEN 599 THEN '{10,11}'::smallint[]
    WHEN 670 THEN '{10,11}'::smallint[]
    WHEN 672 THEN '{9}'::smallint[]
    WHEN 673 THEN '{10}'::smallint[]
    WHEN 674 THEN '{10}'::smallint[]
    WHEN 675 THEN '{10,11}'::smallint[]
    WHEN 676 THEN '{8,10}'::smallint[]
    WHEN 677 THEN '{8,10}'::smallint[]
    WHEN 678 THEN '{8,10}'::smallint[]
    WHEN 679 THEN '{10,14}'::smallint[]
    WHEN 680 THEN '{10}'::smallint[]
    WHEN 681 THEN '{9,12}'::smallint[]
    WHEN 682 THEN '{8}'::smallint[]
    WHEN 683 THEN '{7,10}'::smallint[]
    WHEN 685 THEN '{8,9,10,13}'::smallint[]
    WHEN 686 THEN '{8,11}'::smallint[]
    WHEN 687 THEN '{9}'::smallint[]
    WHEN 688 THEN '{8,9,10}'::smallint[]
    WHEN 689 THEN '{9,11,12}'::smallint[]
    WHEN 690 THEN '{7,8,9,10}'::smallint[]
    WHEN 691 THEN '{10}'::smallint[]
    WHEN 692 THEN '{10}'::smallint[]
    WHEN 800 THEN '{11}'::smallint[]
    WHEN 808 THEN '{11}'::smallint[]
    WHEN 850 THEN '{11,13}'::smallint[]
    WHEN 852 THEN '{8,9,10,11,12,14}'::smallint[]
    WHEN 853 THEN '{10,11}'::smallint[]
    WHEN 855 THEN '{11,12,13}'::smallint[]
    WHEN 856 THEN '{11,12,13}'::smallint[]
    WHEN 870 THEN '{12,15}'::smallint[]
    WHEN 878 THEN '{15}'::smallint[]
    WHEN 880 THEN '{9,10,11,12,13}'::smallint[]
    WHEN 881 THEN '{12,13}'::smallint[]
    WHEN 882 THEN '{10,11,12,13,14,15}'::smallint[]
    WHEN 883 THEN '{11,12,13,14,15}'::smallint[]
    WHEN 886 THEN '{10,11,12,13,14}'::smallint[]
    WHEN 888 THEN '{14}'::smallint[]
    WHEN 960 THEN '{10,13}'::smallint[]
    WHEN 961 THEN '{10,11}'::smallint[]
    WHEN 962 THEN '{11,12}'::smallint[]
    WHEN 963 THEN '{11,12}'::smallint[]
    WHEN 964 THEN '{11,12,13}'::smallint[]
    WHEN 965 THEN '{10,11}'::smallint[]
    WHEN 966 THEN '{12,13}'::smallint[]
    WHEN 967 THEN '{10,11,12}'::smallint[]
    WHEN 968 THEN '{10,11,12}'::smallint[]
    WHEN 970 THEN '{11,12,13}'::smallint[]
    WHEN 971 THEN '{8,9,10,11,12,13,14,15}'::smallint[]
    WHEN 972 THEN '{10,11,12,13,14,15}'::smallint[]
    WHEN 973 THEN '{11}'::smallint[]
    WHEN 974 THEN '{10,11,12,14}'::smallint[]
    WHEN 975 THEN '{10,11}'::smallint[]
    WHEN 976 THEN '{11,12,13}'::smallint[]
    WHEN 977 THEN '{11,13,14}'::smallint[]
    WHEN 979 THEN '{12}'::smallint[]
    WHEN 992 THEN '{12}'::smallint[]
    WHEN 993 THEN '{11}'::smallint[]
    WHEN 994 THEN '{12}'::smallint[]
    WHEN 995 THEN '{12}'::smallint[]
    WHEN 996 THEN '{12,13}'::smallint[]
    WHEN 998 THEN '{12}'::smallint[]
END
$$;

COMMENT ON FUNCTION convkey._phone_possible_lengths(integer) IS
    'Possible total digit counts of an E.164 number for a country calling code; NULL when the code is unknown. Generated from phonenumbers metadata.';

-- convkey._phone_country_code(p_digits text) -> integer
-- The country calling code at the start of a digit string (no '+'), NULL when none matches.
-- Calling codes are prefix-free, so at most one of the 1-, 2- and 3-digit prefixes is a code.
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._phone_country_code(p_digits text)
RETURNS integer
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE
    WHEN left(p_digits, 1) IN (
            '1', '7'
        )
        THEN left(p_digits, 1)::integer
    WHEN left(p_digits, 2) IN (
            '20', '27', '30', '31', '32', '33', '34', '36', '39', '40', '41', '43',
            '44', '45', '46', '47', '48', '49', '51', '52', '53', '54', '55', '56',
            '57', '58', '60', '61', '62', '63', '64', '65', '66', '81', '82', '84',
            '86', '90', '91', '92', '93', '94', '95', '98'
        )
        THEN left(p_digits, 2)::integer
    WHEN left(p_digits, 3) IN (
            '211', '212', '213', '216', '218', '220', '221', '222', '223', '224', '225', '226',
            '227', '228', '229', '230', '231', '232', '233', '234', '235', '236', '237', '238',
            '239', '240', '241', '242', '243', '244', '245', '246', '247', '248', '249', '250',
            '251', '252', '253', '254', '255', '256', '257', '258', '260', '261', '262', '263',
            '264', '265', '266', '267', '268', '269', '290', '291', '297', '298', '299', '350',
            '351', '352', '353', '354', '355', '356', '357', '358', '359', '370', '371', '372',
            '373', '374', '375', '376', '377', '378', '380', '381', '382', '383', '385', '386',
            '387', '389', '420', '421', '423', '500', '501', '502', '503', '504', '505', '506',
            '507', '508', '509', '590', '591', '592', '593', '594', '595', '596', '597', '598',
            '599', '670', '672', '673', '674', '675', '676', '677', '678', '679', '680', '681',
            '682', '683', '685', '686', '687', '688', '689', '690', '691', '692', '800', '808',
            '850', '852', '853', '855', '856', '870', '878', '880', '881', '882', '883', '886',
            '888', '960', '961', '962', '963', '964', '965', '966', '967', '968', '970', '971',
            '972', '973', '974', '975', '976', '977', '979', '992', '993', '994', '995', '996',
            '998'
        )
        THEN left(p_digits, 3)::integer
END
$$;

COMMENT ON FUNCTION convkey._phone_country_code(text) IS
    'Country calling code at the start of E.164 digits (no +); NULL when none matches.';

-- convkey._canonical_phone_digits(p_digits text) -> text
-- One spelling per subscriber: applies the rules of runner/convkey/phone_rules.py to E.164 digits
-- (no '+'), first matching rule only, once; digits no rule matches come back unchanged.
-- Mirrors convkey.phone.canonical_digits.
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._canonical_phone_digits(p_digits text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE
    -- mexico_mobile_drop_1
    WHEN p_digits ~ E'^521(\\d{10})$'
        THEN regexp_replace(p_digits, E'^521(\\d{10})$', E'52\\1')
    -- brazil_mobile_add_9
    WHEN p_digits ~ E'^55([1-9]{2})([6-9]\\d{7})$'
        THEN regexp_replace(p_digits, E'^55([1-9]{2})([6-9]\\d{7})$', E'55\\19\\2')
    ELSE p_digits
END
$$;

COMMENT ON FUNCTION convkey._canonical_phone_digits(text) IS
    'E.164 digits (no +) rewritten by the first matching subscriber rule (Mexico +521, Brazil ninth digit); unchanged when no rule matches.';

-- convkey._phone_digits_possible(p_digits text) -> boolean
-- True when a digit string (no '+', already canonical) starts with a known calling code and has
-- a total length that code allows; false otherwise; NULL for NULL. The check convkey.phone's
-- normalize_phone makes on its result.
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._phone_digits_possible(p_digits text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE
    WHEN p_digits ~ '^[0-9]+$'
        THEN coalesce(
            length(p_digits) = ANY (
                convkey._phone_possible_lengths(convkey._phone_country_code(p_digits))
            ),
            false
        )
    WHEN p_digits IS NOT NULL
        THEN false
END
$$;

COMMENT ON FUNCTION convkey._phone_digits_possible(text) IS
    'True when canonical E.164 digits (no +) have a known calling code and a total length possible for it.';
