-- Members of a hierarchy unit added by hand are manual, as participants are: the integration
-- never removes them. Rows from before this column were added by the integration.
ALTER TABLE lms.unit_members ADD COLUMN synced boolean NOT NULL DEFAULT true;
ALTER TABLE lms.unit_members ALTER COLUMN synced SET DEFAULT false;
