-- The reference LMS site (schema "lms"): one site per customer, as an LMS keeps it. Objects
-- the integration manages carry its sync key (the IMS sourcedid); objects without one are
-- manual and the integration never touches them.
CREATE SCHEMA IF NOT EXISTS lms;

CREATE TABLE lms.users (
    id          bigserial PRIMARY KEY,
    site        text NOT NULL,
    sync_key    text,                 -- NULL: a manual account
    username    text,
    first_name  text,
    last_name   text,
    email       text,
    profile     text NOT NULL,        -- student, teacher, admin, staff, guardian
    last_login  timestamptz,
    trashed_at  timestamptz,          -- in the trash (recoverable); never hard-deleted
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_sync_key ON lms.users (site, sync_key);

CREATE TABLE lms.units (
    id          bigserial PRIMARY KEY,
    site        text NOT NULL,
    sync_key    text,
    kind        text NOT NULL,        -- skoleeier, skole, trinn, basisgruppe
    name        text NOT NULL,
    parent_id   bigint REFERENCES lms.units (id),
    parent_key  text,                 -- the parent's sync key, resolved to parent_id
    removed_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX units_sync_key ON lms.units (site, sync_key);

-- Memberships have no foreign keys: their per-row triggers cost as much as the inserts of a
-- million participants, users and courses are never hard-deleted (trash, archive), and rows
-- are only ever inserted by joining the users and courses or units they name.
CREATE TABLE lms.unit_members (
    unit_id bigint NOT NULL,
    user_id bigint NOT NULL,
    role    text NOT NULL,
    PRIMARY KEY (unit_id, user_id, role)
);
CREATE INDEX unit_members_user ON lms.unit_members (user_id);

CREATE TABLE lms.terms (
    id          bigserial PRIMARY KEY,
    site        text NOT NULL,
    sync_key    text,                 -- NULL: a term made by hand
    name        text NOT NULL,
    begins      date,
    ends        date,
    created_by_integration boolean NOT NULL DEFAULT false,
    archived_at timestamptz
);
CREATE UNIQUE INDEX terms_sync_key ON lms.terms (site, sync_key);

CREATE TABLE lms.courses (
    id          bigserial PRIMARY KEY,
    site        text NOT NULL,
    sync_key    text,                 -- NULL: a course made by hand
    title       text NOT NULL,
    code        text,
    unit_id     bigint REFERENCES lms.units (id),  -- the hierarchy link
    term_id     bigint REFERENCES lms.terms (id),
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'archived')),
    created_by_integration boolean NOT NULL DEFAULT false,
    archived_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX courses_sync_key ON lms.courses (site, sync_key);

CREATE TABLE lms.participants (
    course_id bigint NOT NULL,
    user_id   bigint NOT NULL,
    role      text NOT NULL,          -- learner, instructor, ... (IMS roletype)
    synced    boolean NOT NULL,       -- false: manual, the integration leaves it alone
    PRIMARY KEY (course_id, user_id, role)
);
CREATE INDEX participants_user ON lms.participants (user_id);

-- Applying a run to the LMS: which steps are done (each step's LMS writes commit together with
-- its row here, so a restart resumes after the last finished step), and the changes that were
-- not simply applied: deferred, skipped (nothing in the LMS for it) or failed.
ALTER TABLE sis.runs ADD COLUMN lms_applied_at timestamptz;
ALTER TABLE sis.runs ADD COLUMN lms_mode text;  -- normal or delay-delete, when applied
ALTER TABLE sis.runs ADD COLUMN lms_counts jsonb;

CREATE TABLE sis.apply_steps (
    run_id  bigint NOT NULL REFERENCES sis.runs (id) ON DELETE CASCADE,
    step    text NOT NULL,
    counts  jsonb NOT NULL,
    done_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);

CREATE TABLE sis.apply_outcomes (
    run_id     bigint NOT NULL,
    entity     text NOT NULL,
    record_key text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('deferred', 'skipped', 'failed')),
    detail     text
);
CREATE INDEX apply_outcomes_run ON sis.apply_outcomes (run_id);

-- Deletions kept back from the LMS during a delay-delete window. Released into the change set
-- of the first run after the window (and marked applied by it), or dropped when the object
-- came back in the meantime.
CREATE TABLE sis.deferred_deletions (
    customer     text NOT NULL,
    entity       text NOT NULL,
    record_key   jsonb NOT NULL,      -- the key columns of the entity, as an object
    deferred_run bigint NOT NULL,
    applied_run  bigint,
    dropped_run  bigint,
    PRIMARY KEY (customer, entity, record_key, deferred_run)
);

-- Which change rows are deferred deletions being released (the run that deferred them).
ALTER TABLE sis.person_changes ADD COLUMN released_from bigint;
ALTER TABLE sis.group_changes ADD COLUMN released_from bigint;
ALTER TABLE sis.membership_changes ADD COLUMN released_from bigint;
