-- Records a run skipped for an error whose key is known: their current state is kept as it
-- is (the diff deletes none of them), and the status email lists them with line and reason.
-- A membership entry names a group/member pair: all its roles are kept.
CREATE TABLE sis.kept (
    run_id    bigint NOT NULL,
    entity    text NOT NULL,        -- person, group or membership
    record_id text NOT NULL,        -- the sourcedid (membership: the group's)
    member_id text,                 -- membership: the member's sourcedid
    line      integer,
    reason    text NOT NULL
);
CREATE INDEX kept_run ON sis.kept (run_id, entity, record_id);
