-- The current state, one partition per customer (LIST on customer): a run's statements and its
-- statistics touch its own customer's partitions only, so their cost follows that customer's
-- size, not how many customers share the database, and no customer's ANALYZE queues another's
-- run. A customer's partitions are made before its first run writes (sisflow.partitions, or
-- sis.customer_partitions below); the change tables stay whole (a run reads its own rows by
-- run_id).
CREATE FUNCTION sis.partition_name(base text, customer text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT base || '__' || left(customer, 40) || '_' || left(md5(customer), 8)
$$;

CREATE FUNCTION sis.customer_partitions(c text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    base text;
    part text;
BEGIN
    -- two first runs of one customer at the same moment: one makes them, the other finds them
    PERFORM pg_advisory_xact_lock(hashtext('sisflow:' || c));
    FOREACH base IN ARRAY ARRAY['persons', 'groups', 'memberships'] LOOP
        part := sis.partition_name(base, c);
        IF to_regclass(format('sis.%I', part)) IS NULL THEN
            -- made alone, then attached: attaching locks the parent less than
            -- CREATE TABLE ... PARTITION OF, so other customers' runs go on meanwhile
            EXECUTE format('CREATE TABLE sis.%I (LIKE sis.%I INCLUDING DEFAULTS)', part, base);
            EXECUTE format('ALTER TABLE sis.%I ATTACH PARTITION sis.%I FOR VALUES IN (%L)',
                           base, part, c);
        END IF;
    END LOOP;
END
$$;

DO $$
DECLARE
    base text;
    keys text;
    c text;
BEGIN
    FOREACH base IN ARRAY ARRAY['persons', 'groups', 'memberships'] LOOP
        EXECUTE format('ALTER TABLE sis.%I RENAME TO %I', base, base || '_whole');
        EXECUTE format('ALTER INDEX sis.%I RENAME TO %I', base || '_pkey',
                       base || '_whole_pkey');
        keys := CASE base WHEN 'memberships' THEN 'customer, group_id, member_id, idtype, roletype'
                          ELSE 'customer, sourcedid' END;
        EXECUTE format('CREATE TABLE sis.%I (LIKE sis.%I INCLUDING DEFAULTS)'
                       ' PARTITION BY LIST (customer)', base, base || '_whole');
        EXECUTE format('ALTER TABLE sis.%I ADD PRIMARY KEY (%s)', base, keys);
    END LOOP;
    FOR c IN SELECT customer FROM sis.persons_whole UNION SELECT customer FROM sis.groups_whole
             UNION SELECT customer FROM sis.memberships_whole LOOP
        PERFORM sis.customer_partitions(c);
    END LOOP;
    FOREACH base IN ARRAY ARRAY['persons', 'groups', 'memberships'] LOOP
        EXECUTE format('INSERT INTO sis.%I SELECT * FROM sis.%I', base, base || '_whole');
        EXECUTE format('DROP TABLE sis.%I', base || '_whole');
    END LOOP;
END
$$;
