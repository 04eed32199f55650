-- Set once the image a run built was removed by garbage collection, so later
-- collections do not ask the engine about it again.
ALTER TABLE runs ADD COLUMN image_collected BOOLEAN NOT NULL DEFAULT FALSE;
