-- multisite replication, schema version 4: key-only capture, stamped later (issue 14).
-- Runs after 001 and 002 on every `multisite migrate`; idempotent. Pending changes of versions
-- 1-3 (stamped, carrying their row) stay readable; the per-table trigger functions are generated
-- by migrate.ts.
--
-- WHY: a version-3 capture stamped each change in the trigger (two index probes for the row's
-- clock, three JSON values) and stored the whole row: ~200 µs per captured row against 30 µs for
-- the plain update. Now the trigger only records which row changed (table, key, operation, changed
-- columns; the transaction and capture time by column defaults): one narrow INSERT per statement.
-- Everything else happens later, off the application's path:
-- * Stamps (hybrid logical clock, incarnation, what the writer had seen, the row's clock after)
--   are computed by multisite.stamp, in change-id order per row, the first time anything needs
--   them: a peer's reader before shipping, or a local apply before it decides a row (under the
--   row's lock, so a local write is always stamped against the clock it really saw).
-- * The row data shipped is the row's state when the change is read (the reader joins the
--   table), so a hot row ships its latest state once per batch; see docs/replication.md.

ALTER TABLE multisite.change ALTER COLUMN h DROP NOT NULL;        -- null until stamped
ALTER TABLE multisite.change ALTER COLUMN origin DROP NOT NULL;   -- null until stamped (always this site)
-- room on each page for the stamping UPDATE: a heap-only update, no index entries to write
ALTER TABLE multisite.change SET (fillfactor = 50);

-- (schema_version becomes 4 in migrate's transaction, once every table's new triggers are in place)

-- Stamps this site's unstamped changes (all of them, or those of the given rows: a JSON array of
-- [tbl, pk] pairs), each row's in change-id order, which is the row's history order: a change
-- of a row is written under the row's lock, so a later change takes a later id (the id sequence
-- has no CACHE, which would hand each session its own range and break that order).
-- For each change, as the version-3 trigger did at write time:
--   h    = greatest(capture time in 1/1024 ms, hlc_floor + 1, the row's previous stamp + 1)
--   ins  = the incarnation it applies to, base = what its writer had seen, s = the row's clock after.
-- Stampers are serialized by a transaction-level advisory lock: a reader (REPEATABLE READ) that
-- finds a change another stamper stamped after its snapshot fails with a serialization error and
-- reads again; an apply stamps after locking the rows, so no local write of them is in flight.
CREATE OR REPLACE FUNCTION multisite.stamp(p_keys jsonb DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
  st record; c record; ps jsonb; q jsonb; qc jsonb; top bigint; h bigint; stamp jsonb; col text;
  cur_tbl text; cur_pk jsonb;
  ids bigint[] := '{}'; hs bigint[] := '{}'; inss jsonb[] := '{}'; bases jsonb[] := '{}'; ss jsonb[] := '{}';
  v_ins jsonb; v_base jsonb;
  empty constant jsonb := '{"i": null, "c": {}, "d": null}';
BEGIN
  PERFORM pg_advisory_xact_lock(7405634361146097000);
  SELECT name, hlc_floor, clock_offset_ms INTO st FROM multisite.site;
  IF st.name IS NULL THEN RAISE EXCEPTION 'multisite: site name not set (run multisite migrate)'; END IF;
  FOR c IN
    SELECT x.id, x.tbl, x.pk, x.op, x.cols, x.ts FROM multisite.change x
     WHERE x.h IS NULL AND p_keys IS NULL
    UNION ALL
    SELECT x.id, x.tbl, x.pk, x.op, x.cols, x.ts
      FROM (SELECT DISTINCT k ->> 0 AS t, k -> 1 AS p FROM jsonb_array_elements(p_keys) k) k
      JOIN LATERAL (SELECT * FROM multisite.change x WHERE x.tbl = k.t AND x.pk = k.p AND x.h IS NULL) x ON true
     WHERE p_keys IS NOT NULL
     ORDER BY 2, 3, 1
  LOOP
    IF cur_tbl IS DISTINCT FROM c.tbl OR cur_pk IS DISTINCT FROM c.pk THEN
      -- the row's first unstamped change: its clock before it (multisite.clock_of, inlined: a SQL
      -- function called from here is planned again per call). Stamped changes of a row come
      -- before its unstamped ones, so the newest stamped one is found just below this id.
      cur_tbl := c.tbl;
      cur_pk := c.pk;
      SELECT z.s, z.top INTO ps, top FROM (
        (SELECT y.s, y.h AS top, 0 AS pri FROM multisite.change y
          WHERE y.tbl = c.tbl AND y.pk = c.pk AND y.id < c.id AND y.s IS NOT NULL ORDER BY y.id DESC LIMIT 1)
        UNION ALL
        (SELECT r.s, r.top, 1 AS pri FROM multisite.row_clock r WHERE r.tbl = c.tbl AND r.pk = c.pk)
      ) z ORDER BY z.top DESC, z.pri DESC LIMIT 1;
      top := coalesce(top, 0);
    END IF;
    h := greatest(floor(extract(epoch FROM c.ts) * 1024000)::bigint + st.clock_offset_ms * 1024, st.hlc_floor + 1, top + 1);
    stamp := jsonb_build_array(h, st.name);
    -- a row never stamped (older than the trigger, or written while capture was off) has an
    -- unknown incarnation; an update or delete after a tombstone starts from nothing
    -- (plain expressions only below, no queries: PL/pgSQL evaluates those without the executor)
    q := CASE WHEN ps IS NULL OR (c.op <> 'I' AND jsonb_typeof(ps -> 'd') = 'object') THEN empty ELSE ps END;
    qc := coalesce(q -> 'c', '{}'::jsonb);
    IF c.op = 'I' THEN
      v_ins := stamp;
      v_base := to_jsonb(top);
      ps := jsonb_build_object('i', stamp, 'c', '{}'::jsonb, 'd', null);
    ELSIF c.op = 'U' THEN
      v_ins := q -> 'i';
      v_base := '{}';
      FOREACH col IN ARRAY coalesce(c.cols, '{}') LOOP
        v_base := v_base || jsonb_build_object(col, coalesce(qc -> col -> 0, q -> 'i' -> 0, '0'::jsonb));
        qc := qc || jsonb_build_object(col, stamp);
      END LOOP;
      ps := q || jsonb_build_object('c', qc);
    ELSE
      v_ins := q -> 'i';
      v_base := jsonb_build_object('i', q -> 'i', 'c', qc);
      ps := jsonb_build_object('i', null, 'c', '{}'::jsonb, 'd', jsonb_build_object('at', stamp, 'n', q -> 'i',
              'seen', jsonb_build_object('i', q -> 'i', 'c', qc)));
    END IF;
    top := h;
    ids := ids || c.id; hs := hs || h; inss := inss || v_ins; bases := bases || v_base; ss := ss || ps;
  END LOOP;
  IF cardinality(ids) = 0 THEN RETURN 0; END IF;
  UPDATE multisite.change x SET h = u.h, ins = u.ins, base = u.base, s = u.s, origin = st.name
    FROM unnest(ids, hs, inss, bases, ss) AS u(id, h, ins, base, s)
   WHERE x.id = u.id;
  RETURN cardinality(ids);
END $$;

-- Stamps the changes the next read after a watermark will take (their rows' unstamped changes),
-- in a READ COMMITTED statement of its own before the reader's REPEATABLE READ snapshot: after
-- the advisory lock it sees every other stamper's work, so it cannot hit a serialization error;
-- the snapshot that follows only rarely finds a change committed in between to stamp itself.
CREATE OR REPLACE FUNCTION multisite.stamp_batch(p_xmin xid8, p_applied xid8[], p_limit int) RETURNS int
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
  keys jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(7405634361146097000);
  SELECT jsonb_agg(DISTINCT jsonb_build_array(b.tbl, b.pk)) INTO keys
    FROM (SELECT c.tbl, c.pk, c.h FROM multisite.change c
           WHERE c.xid >= p_xmin AND NOT (c.xid = ANY (p_applied))
           ORDER BY c.xid, c.id LIMIT p_limit) b
   WHERE b.h IS NULL;
  IF keys IS NULL THEN RETURN 0; END IF;
  RETURN multisite.stamp(keys);
END $$;
