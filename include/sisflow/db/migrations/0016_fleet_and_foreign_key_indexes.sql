-- The reference site's foreign keys get the indexes a real LMS has on them: taking away the
-- units and terms a run created (undo) checks each against the courses and units that point
-- to it, a scan of every course per unit without them.
CREATE INDEX IF NOT EXISTS courses_unit ON lms.courses (unit_id);
CREATE INDEX IF NOT EXISTS courses_term ON lms.courses (term_id);
CREATE INDEX IF NOT EXISTS units_parent ON lms.units (parent_id);

-- The last readiness checks per customer (ids and counts), for the operations page and the
-- daily digest: when, for which school year, how many blocking findings per list.
CREATE TABLE sis.readiness_checks (
    id          bigserial PRIMARY KEY,
    customer    text NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    school_year text NOT NULL,
    blocking    jsonb NOT NULL,        -- list -> blocking findings
    counts      jsonb NOT NULL         -- list -> findings
);
CREATE INDEX readiness_checks_customer ON sis.readiness_checks (customer, checked_at DESC);
