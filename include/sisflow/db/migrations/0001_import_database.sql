-- The import database: what each customer's SIS sent, staged per run, and the current state
-- that the next file is diffed against. Schema "sis"; the LMS site gets a schema of its own.
CREATE SCHEMA IF NOT EXISTS sis;

-- One run = one file for one customer, from arrival to commit (or rejection).
CREATE TABLE sis.runs (
    id             bigserial PRIMARY KEY,
    customer       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- reading, rejected, staged, diffed, unchanged, superseded, committed, failed
    status         text NOT NULL,
    file_path      text NOT NULL,
    file_name      text NOT NULL,
    file_size      bigint,
    sha256         text,
    datasource     text,
    file_datetime  text,
    file_type      text,
    records        jsonb,   -- records read per entity
    skipped        jsonb,   -- records skipped per entity
    problem_counts jsonb,   -- exact counts per kind of problem
    fatal          jsonb,   -- why the file was rejected whole
    counts         jsonb,   -- the change set: {entity: {create, update, delete}}
    base_run       bigint,  -- the committed run the diff was computed against
    same_as_run    bigint   -- for an unchanged file: the committed run with the same checksum
);
CREATE INDEX runs_customer ON sis.runs (customer, id DESC);

-- Problems found while reading (ids and lines only, never names or other personal data).
CREATE TABLE sis.problems (
    run_id    bigint NOT NULL REFERENCES sis.runs (id) ON DELETE CASCADE,
    entity    text NOT NULL,
    record_id text,
    line      integer,
    reason    text NOT NULL,
    severity  text NOT NULL
);
CREATE INDEX problems_run ON sis.problems (run_id);

-- Templates for the per-run staging tables (sis.staged_<entity>_r<run id>), which are made
-- UNLOGGED with LIKE, filled with COPY and dropped once the run is committed or superseded.
CREATE TABLE sis.staged_person_template (
    line integer, recstatus smallint, sourcedid text NOT NULL, source text, old_ids jsonb,
    userids jsonb, fn text, family text, given text, email text, bday date, gender text,
    institution_role text, extension text
);
CREATE TABLE sis.staged_group_template (
    line integer, recstatus smallint, sourcedid text NOT NULL, source text, grouptype text,
    grouptypes jsonb, short text, long text, "full" text, begin_date date, end_date date,
    parent_id text, extension text
);
CREATE TABLE sis.staged_membership_template (
    line integer, recstatus smallint, group_id text NOT NULL, member_id text NOT NULL,
    idtype smallint NOT NULL, roletype text NOT NULL, subrole text, status smallint NOT NULL,
    begin_date date, end_date date, extension text
);

-- The current state per customer: what the last committed run left.
CREATE TABLE sis.persons (
    customer text NOT NULL, sourcedid text NOT NULL, source text, old_ids jsonb, userids jsonb,
    fn text, family text, given text, email text, bday date, gender text,
    institution_role text, extension text, run_id bigint NOT NULL,
    PRIMARY KEY (customer, sourcedid)
);
CREATE TABLE sis.groups (
    customer text NOT NULL, sourcedid text NOT NULL, source text, grouptype text,
    grouptypes jsonb, short text, long text, "full" text, begin_date date, end_date date,
    parent_id text, extension text, run_id bigint NOT NULL,
    PRIMARY KEY (customer, sourcedid)
);
CREATE TABLE sis.memberships (
    customer text NOT NULL, group_id text NOT NULL, member_id text NOT NULL,
    idtype smallint NOT NULL, roletype text NOT NULL, subrole text, status smallint NOT NULL,
    begin_date date, end_date date, extension text, run_id bigint NOT NULL,
    PRIMARY KEY (customer, group_id, member_id, idtype, roletype)
);

-- Change sets: one row per created, updated or deleted record, with the new values
-- (deletes carry the values they had) and, for updates, which columns changed. No foreign key to
-- sis.runs: its per-row trigger doubled the time of a million-row diff; runs are removed by
-- code that removes their change rows too (state.forget).
CREATE TABLE sis.person_changes (
    run_id bigint NOT NULL,
    op text NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    changed text[],
    sourcedid text NOT NULL, source text, old_ids jsonb, userids jsonb, fn text, family text,
    given text, email text, bday date, gender text, institution_role text, extension text
);
CREATE INDEX person_changes_run ON sis.person_changes (run_id, op);
CREATE TABLE sis.group_changes (
    run_id bigint NOT NULL,
    op text NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    changed text[],
    sourcedid text NOT NULL, source text, grouptype text, grouptypes jsonb, short text,
    long text, "full" text, begin_date date, end_date date, parent_id text, extension text
);
CREATE INDEX group_changes_run ON sis.group_changes (run_id, op);
CREATE TABLE sis.membership_changes (
    run_id bigint NOT NULL,
    op text NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    changed text[],
    group_id text NOT NULL, member_id text NOT NULL, idtype smallint NOT NULL,
    roletype text NOT NULL, subrole text, status smallint, begin_date date, end_date date,
    extension text
);
CREATE INDEX membership_changes_run ON sis.membership_changes (run_id, op);
