-- The filter: each diffed run is judged; a held run waits for a person's decision (or its
-- deadline). The decision is kept here whichever way it was made (Airflow UI, CLI, deadline).
ALTER TABLE sis.runs ADD COLUMN base_counts jsonb;   -- current size per entity when diffed
ALTER TABLE sis.runs ADD COLUMN profile text;        -- default or rollover
ALTER TABLE sis.runs ADD COLUMN verdict jsonb;       -- {passed, profile, trips: [...]}
ALTER TABLE sis.runs ADD COLUMN held_at timestamptz;
ALTER TABLE sis.runs ADD COLUMN deadline timestamptz;
ALTER TABLE sis.runs ADD COLUMN airflow_run jsonb;   -- {dag_id, run_id} when Airflow runs it

CREATE TABLE sis.filter_decisions (
    run_id     bigint PRIMARY KEY REFERENCES sis.runs (id) ON DELETE CASCADE,
    decision   text NOT NULL CHECK (decision IN ('opened', 'rejected', 'expired')),
    decided_by text,                -- the person (Airflow user or CLI --by); NULL when expired
    decided_at timestamptz NOT NULL DEFAULT now(),
    reason     text,
    via        text NOT NULL CHECK (via IN ('airflow', 'cli', 'deadline'))
);
