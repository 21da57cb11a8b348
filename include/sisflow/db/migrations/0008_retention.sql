-- When a run's history (change rows, outcomes, problems, kept lists) was removed after the
-- retention period: the run's summary stays.
ALTER TABLE sis.runs ADD COLUMN pruned_at timestamptz;
CREATE INDEX runs_created ON sis.runs (created_at) WHERE pruned_at IS NULL;
