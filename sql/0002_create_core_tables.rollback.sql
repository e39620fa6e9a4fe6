-- Why: undo 0002 (the post-apply functions that use these tables are dropped with them).
DROP TABLE IF EXISTS convkey.conversation_merge, convkey.identity_conflict, convkey.identity,
    convkey.whatsapp_message, convkey.whatsapp_conversation CASCADE;
DROP SEQUENCE IF EXISTS convkey.pending_person_seq;
