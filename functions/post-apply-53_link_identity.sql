-- convkey.link_identity(p_business_id bigint, p_wa_id text, p_other text, p_source text DEFAULT 'message')
--   RETURNS bigint
-- Declares that two identifiers (LID JID, phone JID, E.164 phone, BSUID) name one person, as
-- Baileys reveals it (key.remoteJidAlt, lid-mapping.update, history sync).
--   * Neither side has a conversation: the link is remembered (both join one pending person),
--     so the first get-or-create with either finds one conversation from the start. NULL.
--   * Otherwise the sides join at once, exactly as get-or-create joins them: conversations
--     merge (the most recent survives, audited), identities attach, and a LID/BSUID already
--     paired with another phone moves to the new phone's person (newest wins, its messages stay,
--     counted in identity_conflict). When that person has no conversation yet the LID leaves its
--     old conversation for the pending person. Returns the surviving conversation id (NULL when
--     the linked person still has none).
--   * Two conversations of different leads are never joined: 22023 (use merge_leads).
--   * Two conversations an unmerge separated are not joined by an automatic link (counted in
--     identity_conflict as 'separated'; the conversation of p_wa_id is returned); p_source =>
--     'manual' overrides and removes the separation.
-- Locks: both identities' advisory locks, their pending persons', then conversation rows in id
-- order. Raises 22023 (bad input, the same identity twice, different leads), 22001 (> 256 chars).
CREATE OR REPLACE FUNCTION convkey.link_identity(
    p_business_id bigint,
    p_wa_id text,
    p_other text,
    p_source text DEFAULT 'message')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_a        record;
    v_b        record;
    v_kinds    text[];
    v_values   text[];
    v_owner    bigint[];
    v_pending  bigint[];
    v_owner2   bigint[];
    v_pending2 bigint[];
    v_leads    bigint[];
    v_phone    text;
    v_person   bigint;
    v_res      record;
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    PERFORM convkey._check_label(p_source, 'p_source');
    v_a := convkey._identity_of(p_wa_id, 'p_wa_id');
    v_b := convkey._identity_of(p_other, 'p_other');
    IF v_a.o_kind = v_b.o_kind AND v_a.o_value = v_b.o_value THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_wa_id and p_other name the same %s: %s', v_a.o_kind, convkey._mask(v_a.o_value)),
            HINT = 'A link joins two different identifiers of one person (e.g. its LID and its phone).';
    END IF;
    -- strongest first (phone > lid > bsuid), as get-or-create orders a call's identities
    IF array_position(ARRAY['phone', 'lid', 'bsuid'], v_b.o_kind) < array_position(ARRAY['phone', 'lid', 'bsuid'], v_a.o_kind) THEN
        v_kinds := ARRAY[v_b.o_kind, v_a.o_kind];
        v_values := ARRAY[v_b.o_value, v_a.o_value];
    ELSE
        v_kinds := ARRAY[v_a.o_kind, v_b.o_kind];
        v_values := ARRAY[v_a.o_value, v_b.o_value];
    END IF;

    PERFORM convkey._lock_identities(p_business_id, v_kinds, v_values);
    LOOP
        SELECT array_agg(i.conversation_id ORDER BY c.n), array_agg(i.pending_person_id ORDER BY c.n)
          INTO v_owner, v_pending
          FROM unnest(v_kinds, v_values) WITH ORDINALITY AS c(k, v, n)
          LEFT JOIN convkey.identity i ON i.business_id = p_business_id AND i.kind = c.k AND i.value = c.v;
        PERFORM convkey._lock_pending_persons(p_business_id, v_pending);
        PERFORM convkey._lock_conversations(p_business_id, v_owner);
        SELECT array_agg(i.conversation_id ORDER BY c.n), array_agg(i.pending_person_id ORDER BY c.n)
          INTO v_owner2, v_pending2
          FROM unnest(v_kinds, v_values) WITH ORDINALITY AS c(k, v, n)
          LEFT JOIN convkey.identity i ON i.business_id = p_business_id AND i.kind = c.k AND i.value = c.v;
        EXIT WHEN v_owner2 IS NOT DISTINCT FROM v_owner AND v_pending2 IS NOT DISTINCT FROM v_pending;
    END LOOP;

    -- The leads on each side (a conversation's lead, or leads of a pending person) must agree.
    SELECT array_agg(DISTINCT l.lead) INTO v_leads FROM (
        SELECT c.lead_id AS lead FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.id = ANY (v_owner) AND c.lead_id IS NOT NULL
        UNION
        SELECT i.value::bigint FROM convkey.identity i
         WHERE i.business_id = p_business_id AND i.pending_person_id = ANY (v_pending) AND i.kind = 'lead'
           AND i.source <> 'merge_leads') AS l;
    IF cardinality(v_leads) > 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_wa_id and p_other belong to different leads (%s)', array_to_string(v_leads, ', ')),
            HINT = 'Different leads never merge implicitly: use convkey.merge_leads() when the CRM merged them.';
    END IF;

    IF v_owner[1] IS NOT NULL AND v_owner[2] IS NOT NULL AND v_owner[1] <> v_owner[2] THEN
        IF p_source = 'manual' THEN
            DELETE FROM convkey.conversation_separation s
             WHERE s.business_id = p_business_id
               AND s.low_id = least(v_owner[1], v_owner[2]) AND s.high_id = greatest(v_owner[1], v_owner[2]);
        ELSIF EXISTS (SELECT 1 FROM convkey.conversation_separation s
                       WHERE s.business_id = p_business_id
                         AND s.low_id = least(v_owner[1], v_owner[2]) AND s.high_id = greatest(v_owner[1], v_owner[2])) THEN
            FOR v_i IN 1 .. 2 LOOP
                PERFORM convkey._record_conflict(p_business_id, v_kinds[v_i], v_values[v_i], v_owner[3 - v_i],
                                                 v_owner[v_i], 'separated');
            END LOOP;
            RETURN CASE WHEN v_kinds[1] = v_a.o_kind AND v_values[1] = v_a.o_value THEN v_owner[1] ELSE v_owner[2] END;
        END IF;
    END IF;

    IF v_owner[1] IS NULL AND v_owner[2] IS NULL THEN
        -- Nobody converses yet: one pending person. A LID/BSUID whose person has another phone
        -- leaves it alone for the phone it is linked to now (newest wins).
        IF v_kinds[1] = 'phone' AND v_kinds[2] <> 'phone' AND v_pending[2] IS NOT NULL THEN
            SELECT i.value INTO v_phone FROM convkey.identity i
             WHERE i.business_id = p_business_id AND i.pending_person_id = v_pending[2] AND i.kind = 'phone'
               AND i.value <> v_values[1] LIMIT 1;
            IF v_phone IS NOT NULL THEN
                v_pending[2] := NULL;
            END IF;
        END IF;
        v_person := coalesce(v_pending[1], v_pending[2], nextval('convkey.pending_person_seq'));
        IF v_pending[2] IS NOT NULL AND v_pending[2] <> v_person THEN
            UPDATE convkey.identity i SET pending_person_id = v_person, updated_at = now()
             WHERE i.business_id = p_business_id AND i.pending_person_id = v_pending[2];
        END IF;
        INSERT INTO convkey.identity AS i (business_id, kind, value, pending_person_id, source)
        SELECT p_business_id, c.k, c.v, v_person, p_source FROM unnest(v_kinds, v_values) AS c(k, v)
        ON CONFLICT (business_id, kind, value) DO UPDATE
           SET pending_person_id = EXCLUDED.pending_person_id, source = EXCLUDED.source, updated_at = now()
         WHERE i.pending_person_id IS DISTINCT FROM EXCLUDED.pending_person_id;
        RETURN NULL;
    END IF;

    IF v_kinds[1] = 'phone' AND v_kinds[2] <> 'phone' AND v_owner[1] IS NULL AND v_owner[2] IS NOT NULL
       AND EXISTS (SELECT 1 FROM convkey.whatsapp_conversation c
                    WHERE c.business_id = p_business_id AND c.id = v_owner[2]
                      AND c.phone_e164 IS NOT NULL AND c.phone_e164 <> v_values[1]) THEN
        -- The LID's conversation belongs to another phone and the new phone has no conversation:
        -- the LID leaves for the new phone's (pending) person; its past messages stay.
        v_person := coalesce(v_pending[1], nextval('convkey.pending_person_seq'));
        INSERT INTO convkey.identity AS i (business_id, kind, value, pending_person_id, source)
        VALUES (p_business_id, v_kinds[1], v_values[1], v_person, p_source)
        ON CONFLICT (business_id, kind, value) DO NOTHING;
        UPDATE convkey.identity i
           SET conversation_id = NULL, pending_person_id = v_person, source = p_source, updated_at = now()
         WHERE i.business_id = p_business_id AND i.kind = v_kinds[2] AND i.value = v_values[2];
        PERFORM convkey._refresh_conversation(p_business_id, v_owner[2]);
        PERFORM convkey._record_conflict(p_business_id, v_kinds[2], v_values[2], v_owner[2], NULL,
                                         'moved_to_other_phone');
        RETURN NULL;
    END IF;

    -- At least one side converses: join exactly as get-or-create would.
    v_res := convkey._resolve_conversation(p_business_id, v_kinds, v_values, NULL, 'baileys', now(),
                                           'link:' || p_source);
    RETURN v_res.o_conversation_id;
END;
$$;

COMMENT ON FUNCTION convkey.link_identity(bigint, text, text, text) IS
    'Declare that two identifiers name one person: remembered before any conversation, merged/attached/moved '
    'at once otherwise. Returns the surviving conversation id or NULL. 22023 for different leads.';
