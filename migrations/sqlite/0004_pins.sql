-- A rollback pins its environment, so a push does not silently undo it.
ALTER TABLE environments ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT FALSE;
