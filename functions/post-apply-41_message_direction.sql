-- convkey.tg_whatsapp_message__normalize_direction() RETURNS trigger
-- Trigger _100_normalize_direction, BEFORE INSERT or UPDATE OF direction on whatsapp_message,
-- fires only for a direction other than 'in'/'out': legacy imports may write 'inbound' and
-- 'outbound' (any case), stored as 'in'/'out'. Anything else is refused.
-- Locks: none. Raises 22023 (see convkey._direction).
CREATE OR REPLACE FUNCTION convkey.tg_whatsapp_message__normalize_direction()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.direction := convkey._direction(NEW.direction);
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION convkey.tg_whatsapp_message__normalize_direction() IS
    'Trigger: store legacy inbound/outbound directions as in/out; 22023 for anything else.';

CREATE OR REPLACE TRIGGER _100_normalize_direction
    BEFORE INSERT OR UPDATE OF direction ON convkey.whatsapp_message
    FOR EACH ROW
    WHEN (NEW.direction IS DISTINCT FROM 'in' AND NEW.direction IS DISTINCT FROM 'out')
    EXECUTE FUNCTION convkey.tg_whatsapp_message__normalize_direction();
