-- Why: undo 0003.
DROP TABLE IF EXISTS convkey.conversation_separation;
