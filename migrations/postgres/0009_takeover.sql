-- How often a run was taken over by another replica after its own stopped.
ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
