-- Drops the row types and, with CASCADE, the post-apply functions and views that return them.

SET LOCAL lock_timeout = '5s';

DROP TYPE IF EXISTS convkey.whatsapp_conversation_row, convkey.whatsapp_message_row, convkey.identity_row,
    convkey.identity_conflict_row, convkey.conversation_merge_row, convkey.conversation_separation_row,
    convkey.backfill_row_row, convkey.backfill_cursor_row, convkey.conversation_thread_row,
    convkey.dedup_health_row CASCADE;
