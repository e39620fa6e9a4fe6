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
-- The lengths are one constant array of bit masks rather than a CASE over ~230 calling codes:
-- PL/pgSQL sets up a simple expression's executor state again in every transaction, and for the
-- CASE that cost about 100 us per webhook call; an array subscript costs nothing to set up.

-- convkey._phone_length_masks() -> bigint[]
-- Element cc (1..999) is a bit mask of the possible total digit counts (calling code + national
-- number) of an E.164 number with country calling code cc: bit n is set when n digits are possible;
-- 0 for a code phonenumbers does not know. Mirrors convkey.phone.possible_total_lengths (the main
-- region of the code). A constant: the planner folds it into the callers, so a length check is an
-- array subscript and a shift, not a CASE over every calling code (which PL/pgSQL would set up again
-- in every transaction).
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._phone_length_masks()
RETURNS bigint[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT ARRAY[
    2048, 0, 0, 0, 0, 0, 34816, 0, 0, 0,  -- 1..10
    0, 0, 0, 0, 0, 0, 0, 0, 0, 7168,  -- 11..20
    0, 0, 0, 0, 0, 0, 8064, 0, 0, 28672,  -- 21..30
    16256, 3072, 2048, 2048, 0, 3072, 0, 0, 32512, 2304,  -- 31..40
    18432, 0, 65472, 6656, 1024, 24320, 1152, 7936, 262080, 0,  -- 41..50
    3072, 4096, 5888, 12288, 15360, 14336, 13312, 4096, 0, 7168,  -- 51..60
    24448, 1048064, 64768, 8064, 13312, 39936, 0, 0, 0, 0,  -- 61..70
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 71..80
    1047552, 130432, 0, 7680, 0, 32256, 0, 0, 0, 53760,  -- 81..90
    64512, 31744, 2048, 2048, 7936, 0, 0, 5056, 0, 0,  -- 91..100
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 101..110
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 111..120
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 121..130
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 131..140
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 141..150
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 151..160
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 161..170
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 171..180
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 181..190
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 191..200
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 201..210
    4096, 4096, 6144, 0, 0, 2048, 0, 4096, 0, 5120,  -- 211..220
    4096, 2048, 2048, 6144, 8192, 2048, 2048, 2048, 8192, 11264,  -- 221..230
    7168, 2048, 6144, 253952, 2048, 2048, 6144, 1024, 1024, 4096,  -- 231..240
    3072, 4096, 15360, 4096, 5120, 1024, 768, 1024, 4096, 6144,  -- 241..250
    4096, 7680, 2048, 15360, 4096, 4096, 2048, 6144, 0, 4096,  -- 251..260
    4096, 4096, 13312, 6144, 5120, 2048, 11264, 6144, 1024, 0,  -- 261..270
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 271..280
    0, 0, 0, 0, 0, 0, 0, 0, 0, 384,  -- 281..290
    1024, 0, 0, 0, 0, 0, 1024, 512, 512, 0,  -- 291..300
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 301..310
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 311..320
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 321..330
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 331..340
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2048,  -- 341..350
    4096, 32640, 15360, 5120, 7680, 2048, 2048, 65280, 40448, 0,  -- 351..360
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2048,  -- 361..370
    2048, 11264, 2048, 2048, 32256, 6656, 6144, 10240, 0, 12288,  -- 371..380
    65024, 6144, 63488, 0, 7168, 3840, 6144, 0, 2048, 0,  -- 381..390
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 391..400
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 401..410
    0, 0, 0, 0, 0, 0, 0, 0, 0, 61440,  -- 411..420
    5632, 0, 5120, 0, 0, 0, 0, 0, 0, 0,  -- 421..430
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 431..440
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 441..450
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 451..460
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 461..470
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 471..480
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 481..490
    0, 0, 0, 0, 0, 0, 0, 0, 0, 256,  -- 491..500
    17408, 18432, 19456, 18432, 2048, 10240, 27648, 4608, 2048, 0,  -- 501..510
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 511..520
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 521..530
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 531..540
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 541..550
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 551..560
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 561..570
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 571..580
    0, 0, 0, 0, 0, 0, 0, 0, 0, 4096,  -- 581..590
    6144, 1024, 30720, 4096, 32256, 4096, 1536, 130944, 3072, 0,  -- 591..600
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 601..610
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 611..620
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 621..630
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 631..640
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 641..650
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 651..660
    0, 0, 0, 0, 0, 0, 0, 0, 0, 3072,  -- 661..670
    0, 512, 1024, 1024, 3072, 1280, 1280, 1280, 17408, 1024,  -- 671..680
    4608, 256, 1152, 0, 9984, 2304, 512, 1792, 6656, 1920,  -- 681..690
    1024, 1024, 0, 0, 0, 0, 0, 0, 0, 0,  -- 691..700
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 701..710
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 711..720
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 721..730
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 731..740
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 741..750
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 751..760
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 761..770
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 771..780
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 781..790
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2048,  -- 791..800
    0, 0, 0, 0, 0, 0, 0, 2048, 0, 0,  -- 801..810
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 811..820
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 821..830
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 831..840
    0, 0, 0, 0, 0, 0, 0, 0, 0, 10240,  -- 841..850
    0, 24320, 3072, 0, 14336, 14336, 0, 0, 0, 0,  -- 851..860
    0, 0, 0, 0, 0, 0, 0, 0, 0, 36864,  -- 861..870
    0, 0, 0, 0, 0, 0, 0, 32768, 0, 15872,  -- 871..880
    12288, 64512, 63488, 0, 0, 31744, 0, 16384, 0, 0,  -- 881..890
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 891..900
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 901..910
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 911..920
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 921..930
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 931..940
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 941..950
    0, 0, 0, 0, 0, 0, 0, 0, 0, 9216,  -- 951..960
    3072, 6144, 6144, 14336, 3072, 12288, 7168, 7168, 0, 14336,  -- 961..970
    65280, 64512, 2048, 23552, 3072, 14336, 26624, 0, 4096, 0,  -- 971..980
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  -- 981..990
    0, 4096, 2048, 4096, 4096, 12288, 0, 4096, 0  -- 991..999
]::bigint[]
$$;

COMMENT ON FUNCTION convkey._phone_length_masks() IS
    'Bit masks of possible E.164 total lengths, indexed by country calling code 1..999. Generated from phonenumbers metadata.';

-- convkey._phone_possible_lengths(p_country_code integer) -> smallint[]
-- The possible total digit counts (calling code + national number) of an E.164 number with this
-- country calling code, read from convkey._phone_length_masks(); NULL for a code phonenumbers does
-- not know (or knows no length for).
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._phone_possible_lengths(p_country_code integer)
RETURNS smallint[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE
    WHEN (convkey._phone_length_masks())[p_country_code] <> 0
        THEN ARRAY(
            SELECT n::smallint
              FROM generate_series(1, 62) AS n
             WHERE ((convkey._phone_length_masks())[p_country_code] >> n) & 1 = 1
             ORDER BY n
        )
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
-- normalize_phone makes on its result. Calling codes are prefix-free, so the first of the 1-, 2-
-- and 3-digit prefixes with a mask is the code (a code with no possible length has mask 0, and
-- then no longer prefix has one either).
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._phone_digits_possible(p_digits text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
SELECT CASE
    WHEN p_digits ~ '^[1-9][0-9]*$' AND length(p_digits) <= 62
        THEN coalesce(
            ((convkey._phone_length_masks())[
                CASE
                    WHEN (convkey._phone_length_masks())[left(p_digits, 1)::integer] <> 0
                        THEN left(p_digits, 1)::integer
                    WHEN (convkey._phone_length_masks())[left(p_digits, 2)::integer] <> 0
                        THEN left(p_digits, 2)::integer
                    ELSE left(p_digits, 3)::integer
                END
            ] >> length(p_digits)) & 1 = 1,
            false
        )
    WHEN p_digits IS NOT NULL
        THEN false
END
$$;

COMMENT ON FUNCTION convkey._phone_digits_possible(text) IS
    'True when canonical E.164 digits (no +) have a known calling code and a total length possible for it.';
