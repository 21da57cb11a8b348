-- The customer's active school year, switched by a committed rollover (never by the date
-- alone): a normal import keeps what belongs to a later school year back until then, and an SIS
-- trigger asks for this year's export. One row per switch; the newest is the active one.
CREATE TABLE sis.school_years (
    customer    text NOT NULL,
    label       text NOT NULL,        -- 2025-2026
    start_date  date NOT NULL,
    end_date    date NOT NULL,
    run_id      bigint,               -- the rollover (or first import) that set it
    set_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX school_years_customer ON sis.school_years (customer, set_at DESC);

-- Sync keys given to manual accounts by an operator (readiness: a duplicate in waiting), so
-- that the next import updates that account instead of creating a second one. Kept for the
-- record, and so that an attach can be undone.
CREATE TABLE sis.sync_key_attachments (
    id           bigserial PRIMARY KEY,
    customer     text NOT NULL,
    account_id   bigint NOT NULL,
    sync_key     text NOT NULL,
    certainty    text,
    evidence     text,
    attached_by  text NOT NULL,
    attached_via text NOT NULL,       -- cli (the CSV file) or airflow (the DAG run)
    attached_at  timestamptz NOT NULL DEFAULT now(),
    undone_by    text,
    undone_at    timestamptz
);
CREATE INDEX sync_key_attachments_customer ON sis.sync_key_attachments (customer, id);

-- Birth dates are how a manual account is matched to its person in the SIS data.
ALTER TABLE lms.users ADD COLUMN birth_date date;
