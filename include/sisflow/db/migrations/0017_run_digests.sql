-- The digests of a run's clean records (sisflow.ims.digests), packed: the customer's next
-- run takes a record found there as unchanged and reads only the rest. Kept for the last
-- committed run and the newest one of each customer only.
CREATE TABLE sis.run_digests (
    run_id   bigint PRIMARY KEY REFERENCES sis.runs (id) ON DELETE CASCADE,
    customer text NOT NULL,
    basis    text NOT NULL,    -- what reading a record depended on besides its text
    digests  bytea NOT NULL
);
-- digests do not compress: stored as they are, without the work of trying
ALTER TABLE sis.run_digests ALTER COLUMN digests SET STORAGE EXTERNAL;
CREATE INDEX run_digests_customer ON sis.run_digests (customer);
-- how many records of the run's file were taken as unchanged (not read nor staged)
ALTER TABLE sis.runs ADD COLUMN unchanged integer;
