-- A batch's locks in one round trip instead of six (issue 13: the batch
-- waited on statement round trips, not on work). The lock protocol is
-- unchanged (ARCHITECTURE.md, "No deadlocks between instances"): people
-- first, by region then by person, then households in household_id order;
-- then who names whom is read again under those locks.

-- A person's lock key: FNV-1a of the UTF-8 id number in 31 bits, the same
-- function as the hub's (store/locks.rs `person_key`, checked against this one
-- by a test), so hubs of either side of an upgrade exclude each other.
CREATE FUNCTION dynzero_person_key(id_number text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    hash bigint := 2166136261;
    bytes bytea := convert_to(id_number, 'UTF8');
BEGIN
    FOR i IN 0 .. length(bytes) - 1 LOOP
        hash := ((hash # get_byte(bytes, i)) * 16777619) & 4294967295;
    END LOOP;
    RETURN (hash & 2147483647)::integer;
END
$$;

-- Take every lock a batch needs and read who names whom under them.
--   people, people_keys: the people the messages are about, and their keys;
--   registered: the households the batch registers (their earlier members are
--     locked too: a registration that drops someone bears on them);
--   new_households: the households the messages name themselves (registered or
--     visited), created when missing;
--   region_space, person_space, regions, most_person_locks: the hub's lock
--     constants (store/locks.rs), so that they stay in one place.
-- Rows: ('locked', household, NULL) for each household now locked;
-- ('member', household, person) for every person a registered household ever
-- named; ('naming', household, person) for every household that ever named
-- one of `people` or of those members.
CREATE FUNCTION dynzero_lock_batch(
    people text[], people_keys integer[], registered text[], new_households text[],
    region_space integer, person_space integer, regions integer, most_person_locks integer
) RETURNS TABLE (kind text, household text, person text)
LANGUAGE plpgsql AS $$
DECLARE
    extra text[];
    everyone text[];
    keys integer[];
    region_keys integer[];
    households text[];
    k integer;
BEGIN
    -- The registered households' members, read before the locks.
    SELECT coalesce(array_agg(DISTINCT m.id_number), '{}') INTO extra
    FROM registration_member m
    WHERE m.household_id = ANY(registered) AND m.id_number <> ALL(people);
    everyone := people || extra;
    SELECT coalesce(array_agg(DISTINCT p ORDER BY p), '{}') INTO keys
    FROM unnest(people_keys || ARRAY(SELECT dynzero_person_key(e) FROM unnest(extra) AS e)) AS p;
    SELECT coalesce(array_agg(DISTINCT r ORDER BY r), '{}') INTO region_keys
    FROM (SELECT p % regions AS r FROM unnest(keys) AS p) AS s;

    -- People: a shared lock on each region and an exclusive lock on each
    -- person; for more than most_person_locks people, exclusive region locks
    -- only. Regions first, in order, then people in order.
    IF cardinality(keys) > most_person_locks THEN
        FOREACH k IN ARRAY region_keys LOOP
            PERFORM pg_advisory_xact_lock(region_space, k);
        END LOOP;
    ELSE
        FOREACH k IN ARRAY region_keys LOOP
            PERFORM pg_advisory_xact_lock_shared(region_space, k);
        END LOOP;
        FOREACH k IN ARRAY keys LOOP
            PERFORM pg_advisory_xact_lock(person_space, k);
        END LOOP;
    END IF;

    -- Households: those the messages name and every one naming anyone above,
    -- the missing rows created, all locked in household_id order.
    SELECT coalesce(array_agg(h ORDER BY h), '{}') INTO households
    FROM (SELECT unnest(new_households)
          UNION
          SELECT m.household_id FROM registration_member m WHERE m.id_number = ANY(everyone)) AS s(h);
    IF cardinality(households) > 0 THEN
        INSERT INTO household (household_id)
        SELECT h FROM unnest(new_households) AS h ORDER BY h
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM household WHERE household_id = ANY(households)
        ORDER BY household_id FOR UPDATE;
    END IF;

    -- Who names whom, read again under the locks: a registration that
    -- committed in between is seen.
    RETURN QUERY
        SELECT 'locked', h, NULL::text FROM unnest(households) AS h;
    RETURN QUERY
        WITH members AS MATERIALIZED (
            SELECT DISTINCT m.household_id, m.id_number FROM registration_member m
            WHERE m.household_id = ANY(registered)
        )
        SELECT 'member', m.household_id, m.id_number FROM members m
        UNION ALL
        SELECT DISTINCT 'naming', m.household_id, m.id_number FROM registration_member m
        WHERE m.id_number = ANY(ARRAY(SELECT id_number FROM members) || people);
END
$$;
