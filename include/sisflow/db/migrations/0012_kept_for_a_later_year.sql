-- A group of a school year that is not active yet is kept back until its rollover: the year it
-- waits for is a column of its own (it was the start of the reason's text).
ALTER TABLE sis.kept ADD COLUMN waits_for_year text;
UPDATE sis.kept SET waits_for_year = substring(reason FROM 'belongs to school year (\d{4}-\d{4})')
WHERE entity = 'group' AND reason LIKE 'belongs to school year %';
