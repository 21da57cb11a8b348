-- Drift repairs: who took which drifted records out of a customer's current state, so that
-- the next run makes them again in the LMS (through the filter).
CREATE TABLE sis.drift_repairs (
    id          bigserial PRIMARY KEY,
    customer    text NOT NULL,
    repaired_by text NOT NULL,
    repaired_at timestamptz NOT NULL DEFAULT now(),
    counts      jsonb NOT NULL      -- state rows taken out, per table
);
CREATE INDEX drift_repairs_customer ON sis.drift_repairs (customer, repaired_at);
