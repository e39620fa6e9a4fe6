-- convkey.tg_whatsapp_conversation__guard_identity() RETURNS trigger
-- Trigger _100_guard_identity, BEFORE UPDATE of whatsapp_conversation, fires only when lead_id,
-- phone_e164 or canonical_key change. Applications change lead and phone through the API
-- (assign_lead, merge_leads, get_or_create_conversation), which writes identities first and the
-- row second; a direct UPDATE that would leave the key and the identities disagreeing is
-- refused. Tombstoning is free, and so is a row without a key (an unresolved legacy row, or a
-- side of an unmerge left with no identity) as long as it owns no identity: its lead_id and
-- phone_e164 are legacy values then. A key may become NULL only that way. The backfill's bulk
-- claim (convkey._backfill_resolve_batch), which writes identities and keys together for
-- thousands of rows, sets convkey.backfill_claim for that one statement.
-- Locks: none. Raises 22023 with a hint naming the API function.
CREATE OR REPLACE FUNCTION convkey.tg_whatsapp_conversation__guard_identity()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_ok boolean;
BEGIN
    IF NEW.merged_into_id IS NOT NULL THEN
        RETURN NEW;
    END IF;
    IF NEW.canonical_key IS NULL THEN
        v_ok := NOT EXISTS (SELECT 1 FROM convkey.identity i
                             WHERE i.business_id = NEW.business_id AND i.conversation_id = NEW.id);
    ELSE
        v_ok := (NEW.lead_id IS NULL OR EXISTS (
                    SELECT 1 FROM convkey.identity i
                     WHERE i.business_id = NEW.business_id AND i.kind = 'lead' AND i.value = NEW.lead_id::text
                       AND i.conversation_id = NEW.id))
            AND (NEW.phone_e164 IS NULL OR EXISTS (
                    SELECT 1 FROM convkey.identity i
                     WHERE i.business_id = NEW.business_id AND i.kind = 'phone' AND i.value = NEW.phone_e164
                       AND i.conversation_id = NEW.id))
            AND CASE
                    WHEN NEW.lead_id IS NOT NULL THEN NEW.canonical_key = format('lead:%s:%s', NEW.business_id, NEW.lead_id)
                    WHEN NEW.phone_e164 IS NOT NULL THEN NEW.canonical_key = format('phone:%s:%s', NEW.business_id, NEW.phone_e164)
                    ELSE EXISTS (
                        SELECT 1 FROM convkey.identity i
                         WHERE i.business_id = NEW.business_id AND i.kind IN ('lid', 'bsuid')
                           AND i.conversation_id = NEW.id
                           AND NEW.canonical_key = format('%s:%s:%s', i.kind, NEW.business_id, i.value))
                END;
    END IF;
    IF NOT v_ok THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('conversation %s: lead_id, phone_e164 and canonical_key change only through the convkey API',
                             NEW.id),
            DETAIL = 'The change would leave the conversation key and its identities disagreeing.',
            HINT = 'Use convkey.assign_lead(), convkey.merge_leads() or convkey.get_or_create_conversation().';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION convkey.tg_whatsapp_conversation__guard_identity() IS
    'Trigger: refuse direct updates that would make lead_id/phone_e164/canonical_key disagree with identities.';

CREATE OR REPLACE TRIGGER _100_guard_identity
    BEFORE UPDATE ON convkey.whatsapp_conversation
    FOR EACH ROW
    WHEN ((OLD.lead_id IS DISTINCT FROM NEW.lead_id
           OR OLD.phone_e164 IS DISTINCT FROM NEW.phone_e164
           OR OLD.canonical_key IS DISTINCT FROM NEW.canonical_key)
          AND current_setting('convkey.backfill_claim', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION convkey.tg_whatsapp_conversation__guard_identity();
