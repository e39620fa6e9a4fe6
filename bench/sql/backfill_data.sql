-- Part 3, the backfill: a legacy data set made set-based in a fresh migrated database (the
-- template every repetition clones). Statements end with ';' and a blank line; bench/backfill.py
-- runs them in order, each with the parameters %(people)s, %(rows)s and %(broken)s (so a literal
-- per-cent sign is written twice, comments included). Deterministic: every pseudo-random choice
-- is a hash of the person (hashint8extended with a fixed seed per choice), so one size always
-- gives the same rows.
--
-- People p = 1..people each have a phone +97252<7 digits> and a LID 82399031500000 + p.
-- A tenth have 2 or 3 rows under different identifier forms (of six: phone JID, device JID,
-- +E164, a human national format, c.us, LID JID); the others have one row, mostly a phone JID,
-- one in 20 of them LID-only. Every person with a LID row has its LID-phone link recorded (a
-- history sync) with convkey.link_identity before the backfill. 3 people in 10 have a lead: their
-- first row carries it, each further row with a chance of one half. A few rows per thousand name
-- no person at all (groups, status broadcasts, garbage): the backfill lists them as unresolvable.

CREATE SCHEMA bench_backfill;

CREATE FUNCTION bench_backfill.u(p_n bigint, p_seed bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (hashint8extended(p_n, p_seed) & 16777215)::float8 / 16777216;

CREATE TABLE bench_backfill.person AS
SELECT p,
       '97252' || lpad(p::text, 7, '0') AS phone,
       (82399031500000 + p)::text AS lid,
       CASE WHEN bench_backfill.u(p, 1) < 0.10 THEN 2 + (bench_backfill.u(p, 2) < 0.5)::int ELSE 1 END AS nrows,
       CASE WHEN bench_backfill.u(p, 3) < 0.30 THEN 100000 + p END AS lead_id
  FROM generate_series(1, %(people)s::bigint) AS p;

-- form: 0 phone JID, 1 device JID, 2 +E164, 3 national format, 4 c.us, 5 LID JID
CREATE TABLE bench_backfill.legacy_row AS
WITH forms AS (
    SELECT p.p, p.phone, p.lid, p.lead_id, 0 AS j,
           CASE WHEN u < 0.05 THEN 5 WHEN u < 0.81 THEN 0 WHEN u < 0.89 THEN 4 WHEN u < 0.93 THEN 1
                WHEN u < 0.97 THEN 2 ELSE 3 END AS form
      FROM bench_backfill.person p CROSS JOIN LATERAL (SELECT bench_backfill.u(p.p, 4) AS u) AS x
     WHERE p.nrows = 1
    UNION ALL
    SELECT s.p, s.phone, s.lid, s.lead_id, s.j, s.form
      FROM (SELECT p.p, p.phone, p.lid, p.lead_id, p.nrows, f AS form,
                   row_number() OVER (PARTITION BY p.p ORDER BY bench_backfill.u(p.p * 8 + f, 5)) - 1 AS j
              FROM bench_backfill.person p CROSS JOIN generate_series(0, 5) AS f
             WHERE p.nrows > 1) AS s
     WHERE s.j < s.nrows
), people_rows AS (
    SELECT f.p, f.j, f.form,
           CASE f.form
               WHEN 0 THEN f.phone || '@s.whatsapp.net'
               WHEN 1 THEN f.phone || ':' || (f.p %% 9 + 1) || '@s.whatsapp.net'
               WHEN 2 THEN '+' || f.phone
               WHEN 3 THEN '052-' || substr(f.phone, 6, 3) || '-' || substr(f.phone, 9)
               WHEN 4 THEN f.phone || '@c.us'
               ELSE f.lid || '@lid'
           END AS customer_wa_id,
           CASE WHEN f.j = 0 OR bench_backfill.u(f.p * 8 + f.j, 6) < 0.5 THEN f.lead_id END AS lead_id
      FROM forms f
     ORDER BY f.p, f.j
     LIMIT %(rows)s::bigint - %(broken)s::bigint
), broken AS (
    SELECT NULL::bigint AS p, b::int AS j, NULL::int AS form,
           CASE b %% 3 WHEN 0 THEN '120363' || lpad(b::text, 12, '0') || '@g.us'
                       WHEN 1 THEN 'status@broadcast' ELSE 'garbage!!' || b END AS customer_wa_id,
           NULL::bigint AS lead_id
      FROM generate_series(1, %(broken)s::bigint) AS b
), all_rows AS (
    SELECT * FROM people_rows UNION ALL SELECT * FROM broken
)
SELECT row_number() OVER (ORDER BY hashint8extended(coalesce(a.p * 8 + a.j, -a.j), 7), a.p, a.j) AS id,
       a.p, a.j, a.form, a.customer_wa_id, a.lead_id,
       timestamptz '2025-01-01 00:00+00'
           + bench_backfill.u(coalesce(a.p * 8 + a.j, -a.j), 8) * interval '300 days' AS last_message_at
  FROM all_rows a;

INSERT INTO convkey.whatsapp_conversation
       (id, business_id, customer_wa_id, lead_id, push_name, is_open, session_started_at, last_message_at,
        last_customer_message_at, created_at, updated_at)
SELECT r.id, 1, r.customer_wa_id, r.lead_id, 'Customer ' || coalesce(r.p, 0), r.id %% 4 = 0,
       r.last_message_at - interval '2 hours', r.last_message_at, r.last_message_at - interval '10 minutes',
       r.last_message_at - interval '30 days', r.last_message_at
  FROM bench_backfill.legacy_row r
 ORDER BY r.id;

SELECT setval(pg_get_serial_sequence('convkey.whatsapp_conversation', 'id'),
              (SELECT max(id) FROM convkey.whatsapp_conversation));

-- five messages per conversation, minutes apart, the last at last_message_at; inserted in time
-- order, as a live system wrote them (a conversation's messages lie on different pages)
INSERT INTO convkey.whatsapp_message
       (business_id, conversation_id, direction, provider, provider_message_id, body, wa_id, sent_at, created_at)
SELECT 1, r.id, CASE WHEN m %% 2 = 0 THEN 'in' ELSE 'out' END, 'baileys', 'bf-' || r.id || '-' || m,
       'legacy message ' || m || ' of conversation ' || r.id, r.customer_wa_id,
       r.last_message_at - (4 - m) * interval '37 minutes', r.last_message_at - (4 - m) * interval '37 minutes'
  FROM bench_backfill.legacy_row r CROSS JOIN generate_series(0, 4) AS m
 ORDER BY 8;

-- the people whose LID-phone link a history sync revealed (everyone with a LID row)
CREATE TABLE bench_backfill.link AS
SELECT row_number() OVER (ORDER BY p.p) AS n, p.p, p.lid || '@lid' AS lid_jid, p.phone || '@s.whatsapp.net' AS phone_jid
  FROM bench_backfill.person p
 WHERE EXISTS (SELECT 1 FROM bench_backfill.legacy_row r WHERE r.p = p.p AND r.form = 5);

-- The floor's table: a copy of the legacy conversations in a table made like convkey's, with the
-- same columns, defaults, checks and indexes, except that (business_id, canonical_key) is a plain
-- index: the floor keys duplicates alike and does not merge them, which the unique constraint
-- would refuse. No triggers, no foreign keys (the floor writes no identities and moves nothing).
CREATE TABLE bench_backfill.floor_conversation
    (LIKE convkey.whatsapp_conversation INCLUDING DEFAULTS INCLUDING CONSTRAINTS);

INSERT INTO bench_backfill.floor_conversation SELECT * FROM convkey.whatsapp_conversation ORDER BY id;

ALTER TABLE bench_backfill.floor_conversation ADD PRIMARY KEY (business_id, id);

CREATE INDEX ON bench_backfill.floor_conversation (business_id, canonical_key);

CREATE INDEX ON bench_backfill.floor_conversation (business_id, last_message_at DESC NULLS LAST, id)
    WHERE merged_into_id IS NULL;

CREATE INDEX ON bench_backfill.floor_conversation (business_id, merged_into_id) WHERE merged_into_id IS NOT NULL;

CREATE INDEX ON bench_backfill.floor_conversation (business_id, id) WHERE is_open AND merged_into_id IS NULL;

CREATE INDEX ON bench_backfill.floor_conversation (business_id, id)
    WHERE canonical_key IS NULL AND merged_into_id IS NULL
