-- multisite replication, schema version 5: set-based stamping, the row clock kept by the stamper
-- (issue 14). Runs after 001-003 on every `multisite migrate`; idempotent; one transaction (the
-- file is sent as one simple query).
--
-- WHY (measured, docs/replication.md): version 4's multisite.stamp walked the changes in a
-- PL/pgSQL loop, ~50 µs per change, a third of a catch-up's time and of the replicators' CPU under
-- pgbench; and every apply read each row's clock through multisite.clock_of (a SQL function
-- called per key: ~16 µs each). Now:
-- * multisite.stamp is one statement: window functions give every change its stamp (the chain
--   h_k = greatest(wall_k, floor + 1, h_{k-1} + 1) has the closed form
--   h_k = k + greatest(top_0, max_{j<=k}(wall_j - j))), what its writer had seen, and the row's
--   clock after it;
-- * it writes each stamped row's clock after its last change into multisite.row_clock, so that
--   row_clock alone is a row's current clock: an apply reads it with one join, and trimming no
--   longer needs to fold (it still may: it only ever raises a clock).
-- The rules are version 4's, unchanged (test/integration/replication: the same end states).

-- one stamper at a time (see 003), and none while the clocks below are folded in
SELECT pg_advisory_xact_lock(7405634361146097000);

-- changes stamped by version 3/4 carry the row's clock after them (column s) that row_clock may
-- not have yet: fold each row's latest into row_clock, once (a newer row_clock is kept)
INSERT INTO multisite.row_clock AS rc (tbl, pk, s, top)
SELECT DISTINCT ON (c.tbl, c.pk) c.tbl, c.pk, c.s, c.h FROM multisite.change c
 WHERE c.s IS NOT NULL AND c.h IS NOT NULL AND (SELECT schema_version FROM multisite.site) < 5
 ORDER BY c.tbl, c.pk, c.id DESC
ON CONFLICT (tbl, pk) DO UPDATE SET s = excluded.s, top = excluded.top WHERE rc.top < excluded.top;

-- Where stamping looks for unstamped changes: every change of a transaction below `done_below` is
-- stamped (an unkeyed stamp raises it), so they are all in the change table's tail by xid, found
-- by a range scan of change_xid_idx. Before, every stamp scanned the whole table (unkeyed) or
-- probed the index once per key (keyed, ~5 µs a key) to find mostly nothing: half the stamping
-- time under pgbench (docs/replication.md). A fresh install or an upgrade starts at 0.
CREATE TABLE IF NOT EXISTS multisite.stamp_state (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  done_below xid8 NOT NULL DEFAULT '0'
);
INSERT INTO multisite.stamp_state (one) VALUES (true) ON CONFLICT (one) DO NOTHING;

-- jsonb objects merged in order, later keys win (the running column clocks of a row)
CREATE OR REPLACE AGGREGATE multisite.jsonb_merge(jsonb) (SFUNC = jsonb_concat, STYPE = jsonb, INITCOND = '{}');

-- (schema_version becomes 5 in migrate's transaction, once every table's triggers are in place)

-- Stamps this site's unstamped changes (all, or those of the given rows: a JSON array of
-- [tbl, pk] pairs), each row's in change-id order (its history: see 003), in one statement.
-- For change k of a row whose clock before it is (s_0, top_0) and wall clock w_k (its capture time
-- in 1/1024 ms, floored: a write a few hundred µs after another site's must stamp later, and whole
-- milliseconds made those two tie, which the site name then broke against the later write):
--   h    = greatest(w_k, hlc_floor + 1, h_{k-1} + 1)            (h_0 = top_0)
--   q    = the row's clock before it: s_{k-1}, but nothing after a delete unless k inserts
--   ins  = [h, site] (insert) or q.i;  base = h_{k-1} (insert), the stamp each changed column had
--          in q (update), q's {i, c} (delete);  s_k = the clock after it.
-- q and s are running states: within a run of updates after the row's last insert or delete
-- (group g), the column clocks are the run's start merged with each update's columns.
CREATE OR REPLACE FUNCTION multisite.stamp(p_keys jsonb DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
  st record;
  n int;
  tail xid8;
  v_done xid8;
BEGIN
  PERFORM pg_advisory_xact_lock(7405634361146097000);
  SELECT name, hlc_floor, clock_offset_ms INTO st FROM multisite.site;
  IF st.name IS NULL THEN RAISE EXCEPTION 'multisite: site name not set (run multisite migrate)'; END IF;
  SELECT s.done_below INTO tail FROM multisite.stamp_state s;
  -- every transaction below this had finished when it was read: the query below (the same
  -- snapshot, or a later one under READ COMMITTED) sees all their changes, so an unkeyed stamp
  -- stamps them all
  v_done := pg_snapshot_xmin(pg_current_snapshot());
  WITH todo AS (
    SELECT x.id, x.tbl, x.pk, x.op, x.cols, x.ts FROM multisite.change x
     WHERE x.xid >= coalesce(tail, '0') AND x.h IS NULL
       AND (p_keys IS NULL OR (x.tbl, x.pk) IN (SELECT k ->> 0, k -> 1 FROM jsonb_array_elements(p_keys) k))
  ),
  a AS (
    -- the row's clock before its first unstamped change is row_clock: version 5 keeps it current
    -- (one join; version 4 probed the change table and row_clock per row, ~20 µs each)
    SELECT t.*, rc.s AS s0, coalesce(rc.top, 0) AS top0,
           CASE WHEN rc.s IS NULL OR jsonb_typeof(rc.s -> 'd') = 'object'
                THEN '{"i": null, "c": {}, "d": null}'::jsonb ELSE rc.s END AS q0,
           row_number() OVER w AS k,
           greatest(floor(extract(epoch FROM t.ts) * 1024000)::bigint + st.clock_offset_ms * 1024, st.hlc_floor + 1) AS wall
      FROM todo t LEFT JOIN multisite.row_clock rc ON rc.tbl = t.tbl AND rc.pk = t.pk
    WINDOW w AS (PARTITION BY t.tbl, t.pk ORDER BY t.id)
  ),
  b AS (
    SELECT a.*, a.k + greatest(a.top0, max(a.wall - a.k) OVER w) AS h,
           count(*) FILTER (WHERE a.op <> 'U') OVER w AS g
      FROM a WINDOW w AS (PARTITION BY a.tbl, a.pk ORDER BY a.id ROWS UNBOUNDED PRECEDING)
  ),
  c AS (
    SELECT b.*, first_value(b.op) OVER w AS op0, first_value(b.h) OVER w AS h0,
           multisite.jsonb_merge(CASE WHEN b.op <> 'U' THEN NULL
             WHEN cardinality(b.cols) = 1 THEN jsonb_build_object(b.cols[1], jsonb_build_array(b.h, st.name))
             ELSE (SELECT jsonb_object_agg(col, jsonb_build_array(b.h, st.name)) FROM unnest(b.cols) col) END) OVER w AS crun
      FROM b WINDOW w AS (PARTITION BY b.tbl, b.pk, b.g ORDER BY b.id ROWS UNBOUNDED PRECEDING)
  ),
  d AS (
    -- the clock after each change as far as the next change needs it (a delete: a tombstone)
    SELECT c.*, CASE c.op
      WHEN 'I' THEN jsonb_build_object('i', jsonb_build_array(c.h, st.name), 'c', '{}'::jsonb, 'd', null)
      WHEN 'U' THEN jsonb_build_object(
        'i', CASE WHEN c.g = 0 THEN c.q0 -> 'i' WHEN c.op0 = 'I' THEN jsonb_build_array(c.h0, st.name) END,
        'c', CASE WHEN c.g = 0 THEN coalesce(c.q0 -> 'c', '{}'::jsonb) ELSE '{}'::jsonb END || c.crun,
        'd', null)
      ELSE '{"d": {}}'::jsonb END AS s1
      FROM c
  ),
  e AS (
    SELECT d.*, coalesce(lag(d.h) OVER w, d.top0) AS prevh,
           CASE WHEN d.k = 1 THEN d.q0
                WHEN jsonb_typeof(lag(d.s1) OVER w -> 'd') = 'object' THEN '{"i": null, "c": {}, "d": null}'::jsonb
                ELSE lag(d.s1) OVER w END AS q,
           d.k = count(*) OVER (PARTITION BY d.tbl, d.pk) AS last
      FROM d WINDOW w AS (PARTITION BY d.tbl, d.pk ORDER BY d.id)
  ),
  f AS (
    SELECT e.id, e.tbl, e.pk, e.h, e.last, jsonb_build_array(e.h, st.name) AS stamp, e.op, e.cols, e.s1,
           e.prevh, e.q -> 'i' AS qi, coalesce(e.q -> 'c', '{}'::jsonb) AS qc
      FROM e
  ),
  out AS (
    SELECT f.id, f.tbl, f.pk, f.h, f.last,
           CASE WHEN f.op = 'I' THEN f.stamp ELSE f.qi END AS ins,
           CASE f.op
             WHEN 'I' THEN to_jsonb(f.prevh)
             WHEN 'U' THEN CASE WHEN cardinality(f.cols) = 1
               THEN jsonb_build_object(f.cols[1], coalesce(f.qc -> f.cols[1] -> 0, f.qi -> 0, '0'::jsonb))
               ELSE coalesce((SELECT jsonb_object_agg(col, coalesce(f.qc -> col -> 0, f.qi -> 0, '0'::jsonb))
                                FROM unnest(f.cols) col), '{}'::jsonb) END
             ELSE jsonb_build_object('i', f.qi, 'c', f.qc) END AS base,
           CASE WHEN f.op = 'D' THEN jsonb_build_object('i', null, 'c', '{}'::jsonb, 'd', jsonb_build_object(
                  'at', f.stamp, 'n', f.qi, 'seen', jsonb_build_object('i', f.qi, 'c', f.qc)))
                ELSE f.s1 END AS s
      FROM f
  ),
  upd AS (
    UPDATE multisite.change x SET h = o.h, ins = o.ins, base = o.base, s = o.s, origin = st.name
      FROM out o WHERE x.id = o.id
    RETURNING 1
  ),
  clk AS (
    INSERT INTO multisite.row_clock AS rc (tbl, pk, s, top)
    SELECT o.tbl, o.pk, o.s, o.h FROM out o WHERE o.last
    ON CONFLICT (tbl, pk) DO UPDATE SET s = excluded.s, top = excluded.top WHERE rc.top < excluded.top
  )
  SELECT count(*) INTO n FROM upd;
  IF p_keys IS NULL THEN
    UPDATE multisite.stamp_state s SET done_below = v_done WHERE s.done_below < v_done;
  END IF;
  RETURN n;
END $$;

-- A peer's read stamps first (see 003): everything unstamped, which since the tail is as cheap as
-- finding the batch's own unstamped changes was (its arguments are kept for older readers).
CREATE OR REPLACE FUNCTION multisite.stamp_batch(p_xmin xid8, p_applied xid8[], p_limit int) RETURNS int
LANGUAGE sql AS $$ SELECT multisite.stamp() $$;
