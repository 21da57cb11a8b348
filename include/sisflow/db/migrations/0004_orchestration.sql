-- One run of a customer at a time: the lease its holder (an Airflow DAG run, a sisflow
-- process) takes when it begins and gives back when it finishes (see sisflow.runs).
CREATE TABLE sis.customer_leases (
    customer    text PRIMARY KEY,
    holder      text NOT NULL,         -- airflow:<dag_id>:<run_id> or cli:<host>:<pid>:<nonce>
    description text NOT NULL,         -- what the busy email says about the holder
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    session_key bigint                 -- a process's session-level advisory lock: its liveness
);

-- The run's plan (kind, date, calendar mode, dry run), fixed when it began: whoever goes on
-- with a held run later (a DAG task, `sisflow filter open`) reads the same calendar.
ALTER TABLE sis.runs ADD COLUMN plan jsonb;
-- Which status emails went out for the run (held, then the final one): each is sent once.
ALTER TABLE sis.runs ADD COLUMN emails jsonb NOT NULL DEFAULT '[]';
