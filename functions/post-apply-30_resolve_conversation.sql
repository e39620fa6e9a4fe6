-- convkey._resolve_conversation(p_business_id bigint, p_kinds text[], p_values text[],
--     p_customer_wa_id text, p_provider text, p_at timestamptz, p_via text,
--     p_self bigint DEFAULT NULL, OUT o_conversation_id bigint, OUT o_created boolean)
-- The race-free get-or-create behind every API call. p_kinds/p_values are the call's
-- identities, strongest first (from convkey._call_identities). p_self (the backfill) is an
-- existing unresolved legacy row that these identities were derived from: it takes part like
-- any other owner (it joins, or its identities' owners merge into it), never the fast path;
-- when its lead belongs to a conversation an unmerge separated it from, it joins nothing (it
-- stays unresolved, o_conversation_id = p_self) and a 'separated' conflict is counted.
--   * Fast path: all of them already belong to one conversation: return it, write nothing.
--   * Otherwise serialize on the identities (advisory transaction locks in hash order), then on
--     their pending persons, then lock their conversations (one statement, id order), re-read
--     the owners and retry if a concurrent merge moved them.
--   * Identities in strength order: the call's lead's conversation joins first, else the owner
--     of the strongest owned identity. Another owner joins (merges) unless (a) it has a
--     different lead: the identity stays and a 'different_lead' conflict is counted; (b) the
--     identity is a LID/BSUID whose owner has another phone than the person's (the call's
--     phone first): the identity alone moves here (newest wins, its past messages stay) and a
--     'moved_to_other_phone' conflict is counted; or (c) an unmerge separated the two: the
--     identity stays and a 'separated' conflict is counted.
--   * Several conversations: merged into the most recent (last_message_at, NULL oldest, ties to
--     the lowest id), one audit row each. None: a new conversation keyed by the strongest
--     identity. Unowned and pending identities (and compatible members of their pending
--     persons, learned from links) attach to the result.
-- Locks: advisory xact locks on identities and pending persons; FOR NO KEY UPDATE on the
-- conversations involved. SQLSTATEs: 40001 if the owners never settle (not expected).
CREATE OR REPLACE FUNCTION convkey._resolve_conversation(
    p_business_id bigint,
    p_kinds text[],
    p_values text[],
    p_customer_wa_id text,
    p_provider text,
    p_at timestamptz,
    p_via text,
    p_self bigint DEFAULT NULL,
    OUT o_conversation_id bigint,
    OUT o_created boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    v_n            int := cardinality(p_kinds);
    v_min          bigint;
    v_owned        int := 0;
    v_owner        bigint[];
    v_pending      bigint[];
    v_owner2       bigint[];
    v_attempt      int := 0;
    v_anchor_lead  bigint;
    v_person_phone text;
    v_merge        bigint[] := '{}'::bigint[];
    v_attach_k     text[] := '{}'::text[];
    v_attach_v     text[] := '{}'::text[];
    v_move_k       text[] := '{}'::text[];
    v_move_v       text[] := '{}'::text[];
    v_move_from    bigint[] := '{}'::bigint[];
    v_conf_k       text[] := '{}'::text[];
    v_conf_v       text[] := '{}'::text[];
    v_conf_owner   bigint[] := '{}'::bigint[];
    v_conf_rule    text[] := '{}'::text[];
    v_c_lead       bigint;
    v_c_phone      text;
    v_i            int;
    v_c            bigint;
    v_member       record;
    v_group_phone_clash boolean;
    v_key          text;
    v_new_lead     bigint;
    v_trigger      jsonb;
BEGIN
    -- Fast path: every identity of the call already belongs to the same conversation. One
    -- scalar lookup per identity (1 to 4): their plans are cached, where a join over unnest()
    -- of the arrays was planned again on every call.
    IF p_self IS NULL THEN
        FOR v_i IN 1 .. v_n LOOP
            SELECT i.conversation_id INTO v_c FROM convkey.identity i
             WHERE i.business_id = p_business_id AND i.kind = p_kinds[v_i] AND i.value = p_values[v_i];
            EXIT WHEN v_c IS NULL OR v_c IS DISTINCT FROM coalesce(v_min, v_c);
            v_min := v_c;
            v_owned := v_i;
        END LOOP;
        IF v_owned = v_n THEN
            o_conversation_id := v_min;
            o_created := false;
            RETURN;
        END IF;
    END IF;

    -- Level 1: the call's identities, in a fixed order.
    PERFORM convkey._lock_identities(p_business_id, p_kinds, p_values);

    LOOP
        v_attempt := v_attempt + 1;
        v_owner := convkey._identity_owners(p_business_id, p_kinds, p_values);
        v_pending := v_owner[v_n + 1 : 2 * v_n];
        v_owner := v_owner[1 : v_n];
        -- Level 2: pending persons (identities learned from links, no conversation yet).
        PERFORM convkey._lock_pending_persons(p_business_id, v_pending);
        -- Level 3: the owning conversations, one statement, id order.
        PERFORM convkey._lock_conversations(p_business_id, v_owner || p_self);
        v_owner2 := convkey._identity_owners(p_business_id, p_kinds, p_values);
        EXIT WHEN v_owner2 IS NOT DISTINCT FROM (v_owner || v_pending);
        IF v_attempt >= 50 THEN
            RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                MESSAGE = 'convkey could not settle the owners of a call''s identities',
                HINT = 'Retry the call.';
        END IF;
    END LOOP;

    -- The row itself (p_self) and its lead: the lead's conversation joins without asking (the CRM
    -- names the person), except one an unmerge separated from the row. A row an unmerge left
    -- unresolved keeps its legacy lead_id, and that must not undo the unmerge: the row joins
    -- nothing, stays unresolved, and a 'separated' conflict is counted. (The test of p_self is an
    -- IF of its own: alone it is a PL/pgSQL simple expression, where the EXISTS would make the
    -- whole condition a query run on every call of the slow path.)
    IF p_self IS NOT NULL AND p_kinds[1] = 'lead' AND v_owner[1] IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM convkey.conversation_separation s
                    WHERE s.business_id = p_business_id
                      AND s.low_id = least(v_owner[1], p_self) AND s.high_id = greatest(v_owner[1], p_self)) THEN
            PERFORM convkey._record_conflict(p_business_id, 'lead', p_values[1], p_self, v_owner[1], 'separated');
            o_conversation_id := p_self;
            o_created := false;
            RETURN;
        END IF;
    END IF;

    -- Identities in strength order decide: the call's lead's conversation joins first (its lead,
    -- the surviving one after merge_leads, becomes the person's); then each other owner joins
    -- unless rule (a) or (b) or a separation keeps it apart.
    v_i := array_position(p_kinds, 'phone');
    IF v_i IS NOT NULL THEN
        v_person_phone := p_values[v_i];
    END IF;
    IF p_kinds[1] = 'lead' THEN
        v_anchor_lead := p_values[1]::bigint;
    END IF;
    IF p_self IS NOT NULL THEN
        v_merge := ARRAY[p_self];
    END IF;
    FOR v_i IN 1 .. v_n LOOP
        v_c := v_owner[v_i];
        IF v_c IS NULL THEN
            v_attach_k := v_attach_k || p_kinds[v_i];
            v_attach_v := v_attach_v || p_values[v_i];
            CONTINUE;
        END IF;
        CONTINUE WHEN v_c = ANY (v_merge);
        SELECT c.lead_id, c.phone_e164 INTO v_c_lead, v_c_phone FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.id = v_c;
        IF p_kinds[v_i] = 'lead' THEN
            v_anchor_lead := coalesce(v_c_lead, v_anchor_lead);
        ELSIF v_c_lead IS NOT NULL AND v_anchor_lead IS NOT NULL AND v_c_lead <> v_anchor_lead THEN
            v_conf_k := v_conf_k || p_kinds[v_i];
            v_conf_v := v_conf_v || p_values[v_i];
            v_conf_owner := v_conf_owner || v_c;
            v_conf_rule := v_conf_rule || 'different_lead'::text;
            CONTINUE;
        ELSIF p_kinds[v_i] IN ('lid', 'bsuid') AND v_c_phone IS NOT NULL AND v_person_phone IS NOT NULL
              AND v_c_phone <> v_person_phone THEN
            v_move_k := v_move_k || p_kinds[v_i];
            v_move_v := v_move_v || p_values[v_i];
            v_move_from := v_move_from || v_c;
            CONTINUE;
        ELSIF cardinality(v_merge) > 0 AND EXISTS (
                SELECT 1 FROM convkey.conversation_separation s
                 WHERE s.business_id = p_business_id
                   AND ((s.low_id = v_c AND s.high_id = ANY (v_merge)) OR (s.high_id = v_c AND s.low_id = ANY (v_merge)))) THEN
            v_conf_k := v_conf_k || p_kinds[v_i];
            v_conf_v := v_conf_v || p_values[v_i];
            v_conf_owner := v_conf_owner || v_c;
            v_conf_rule := v_conf_rule || 'separated'::text;
            CONTINUE;
        END IF;
        v_merge := v_merge || v_c;
        v_anchor_lead := coalesce(v_anchor_lead, v_c_lead);
        v_person_phone := coalesce(v_person_phone, v_c_phone);
    END LOOP;

    -- Members of pending persons the call touches join too, unless a rule keeps them apart.
    IF EXISTS (SELECT 1 FROM unnest(v_pending) AS x WHERE x IS NOT NULL) THEN
        SELECT EXISTS (
            SELECT 1 FROM convkey.identity i
             WHERE i.business_id = p_business_id AND i.pending_person_id = ANY (v_pending)
               AND i.kind = 'phone' AND v_person_phone IS NOT NULL AND i.value <> v_person_phone)
          INTO v_group_phone_clash;
        FOR v_member IN
            SELECT i.kind, i.value FROM convkey.identity i
             WHERE i.business_id = p_business_id AND i.pending_person_id = ANY (v_pending)
               AND NOT EXISTS (SELECT 1 FROM unnest(v_attach_k, v_attach_v) AS a(k, v)
                                WHERE a.k = i.kind AND a.v = i.value)
             ORDER BY array_position(ARRAY['lead', 'phone', 'lid', 'bsuid'], i.kind), i.value
        LOOP
            -- leads of one pending person were joined by merge_leads: they stay together
            CONTINUE WHEN v_member.kind = 'lead' AND v_anchor_lead IS NOT NULL
                          AND v_member.value <> v_anchor_lead::text
                          AND NOT (p_kinds[1] = 'lead' AND v_pending[1] IS NOT NULL);
            CONTINUE WHEN v_member.kind <> 'lead' AND v_group_phone_clash;
            v_attach_k := v_attach_k || v_member.kind;
            v_attach_v := v_attach_v || v_member.value;
            IF v_member.kind = 'lead' THEN
                v_anchor_lead := coalesce(v_anchor_lead, v_member.value::bigint);
            ELSIF v_member.kind = 'phone' THEN
                v_person_phone := coalesce(v_person_phone, v_member.value);
            END IF;
        END LOOP;
    END IF;

    -- The surviving lead among attached leads: one not marked as merged away by merge_leads.
    SELECT a.v::bigint INTO v_new_lead
      FROM unnest(v_attach_k, v_attach_v) AS a(k, v)
     WHERE a.k = 'lead'
     ORDER BY (SELECT i.source FROM convkey.identity i
                WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = a.v) = 'merge_leads' NULLS FIRST,
              a.v = v_anchor_lead::text DESC, a.v
     LIMIT 1;

    v_trigger := jsonb_build_object('via', p_via, 'kinds', to_jsonb(p_kinds), 'values', to_jsonb(p_values));
    IF cardinality(v_merge) > 0 THEN
        SELECT c.id INTO o_conversation_id FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.id = ANY (v_merge)
         ORDER BY c.last_message_at DESC NULLS LAST, c.id LIMIT 1;
        o_created := false;
        FOR v_c IN
            SELECT c.id FROM convkey.whatsapp_conversation c
             WHERE c.business_id = p_business_id AND c.id = ANY (v_merge) AND c.id <> o_conversation_id
             ORDER BY c.id
        LOOP
            PERFORM convkey._merge_conversations(p_business_id, o_conversation_id, v_c,
                                                 CASE WHEN p_self IS NULL THEN 'auto' ELSE 'backfill' END, v_trigger);
        END LOOP;
    ELSE
        -- A new conversation, keyed by the strongest identity it gets.
        SELECT a.v INTO v_c_phone FROM unnest(v_attach_k, v_attach_v) AS a(k, v)
         WHERE a.k = 'phone' ORDER BY a.v = v_person_phone DESC, a.v LIMIT 1;
        IF v_new_lead IS NOT NULL THEN
            v_key := format('lead:%s:%s', p_business_id, v_new_lead);
        ELSIF v_c_phone IS NOT NULL THEN
            v_key := format('phone:%s:%s', p_business_id, v_c_phone);
        ELSE
            SELECT format('%s:%s:%s', a.k, p_business_id, a.v) INTO v_key
              FROM unnest(v_attach_k, v_attach_v) AS a(k, v)
             ORDER BY array_position(ARRAY['lid', 'bsuid'], a.k), a.v LIMIT 1;
        END IF;
        INSERT INTO convkey.whatsapp_conversation
            (business_id, canonical_key, lead_id, phone_e164, customer_wa_id, provider, session_started_at)
        VALUES (p_business_id, v_key,
                v_new_lead, v_c_phone, p_customer_wa_id, coalesce(p_provider, 'baileys'), coalesce(p_at, now()))
        RETURNING id INTO o_conversation_id;
        o_created := true;
    END IF;

    IF cardinality(v_attach_k) > 0 THEN
        INSERT INTO convkey.identity AS i (business_id, kind, value, conversation_id, source)
        SELECT p_business_id, a.k, a.v, o_conversation_id, p_via FROM unnest(v_attach_k, v_attach_v) AS a(k, v)
        ON CONFLICT (business_id, kind, value) DO UPDATE
           SET conversation_id = EXCLUDED.conversation_id, pending_person_id = NULL, updated_at = now();
    END IF;
    FOR v_i IN 1 .. cardinality(v_move_k) LOOP
        UPDATE convkey.identity i SET conversation_id = o_conversation_id, source = p_via, updated_at = now()
         WHERE i.business_id = p_business_id AND i.kind = v_move_k[v_i] AND i.value = v_move_v[v_i];
        PERFORM convkey._refresh_conversation(p_business_id, v_move_from[v_i]);
        PERFORM convkey._record_conflict(p_business_id, v_move_k[v_i], v_move_v[v_i], v_move_from[v_i],
                                         o_conversation_id, 'moved_to_other_phone');
    END LOOP;
    FOR v_i IN 1 .. cardinality(v_conf_k) LOOP
        PERFORM convkey._record_conflict(p_business_id, v_conf_k[v_i], v_conf_v[v_i], o_conversation_id,
                                         v_conf_owner[v_i], v_conf_rule[v_i]);
    END LOOP;
    IF NOT o_created THEN
        PERFORM convkey._refresh_conversation(p_business_id, o_conversation_id, v_new_lead, v_person_phone);
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey._resolve_conversation(bigint, text[], text[], text, text, timestamptz, text, bigint) IS
    'Internal race-free get-or-create: find, create, attach, move or merge by the call''s identities.';
