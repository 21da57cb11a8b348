-- Identity changes: a sync key that leaves and one that arrives for the same person or group
-- (an SIS that rebuilt its ids). A pair is decided once per customer, by a rule (two keys
-- agree) or by a person, and remembered: found again by a later run or foreseen by readiness,
-- it is not asked again. An accepted pair relinks the LMS object (it keeps its id, content and
-- history and takes the new key); a refused one goes on as a delete and a create.
CREATE TABLE sis.relinks (
    id           bigserial PRIMARY KEY,
    customer     text NOT NULL,
    entity       text NOT NULL CHECK (entity IN ('person', 'group')),
    old_key      text NOT NULL,
    new_key      text NOT NULL,
    run_id       bigint,           -- the run that found it last (NULL: foreseen by readiness)
    certainty    text NOT NULL CHECK (certainty IN ('high', 'low')),
    ambiguous    boolean NOT NULL, -- one of its keys is in another pair of the same finding
    evidence     text[] NOT NULL,  -- which keys agree (their names, never their values)
    found_at     timestamptz NOT NULL DEFAULT now(),
    decision     text CHECK (decision IN ('accepted', 'refused')),
    decided_by   text,             -- a person; NULL when the rule decided
    decided_via  text,             -- rule, cli, airflow
    decided_at   timestamptz,
    reason       text,
    applied_run  bigint,           -- the run whose apply relinked the LMS object
    undone_by    text,
    undone_at    timestamptz,
    undo_reason  text,
    UNIQUE (customer, entity, old_key, new_key)
);
CREATE INDEX relinks_run ON sis.relinks (run_id);
