-- multisite replication: schema, capture trigger, apply helper.
-- Installed by `multisite migrate`; every statement is idempotent, so running it again is harmless.
-- Everything lives in the schema "multisite"; `multisite migrate --uninstall` drops it (CASCADE also
-- drops the capture triggers on the replicated tables).

CREATE SCHEMA IF NOT EXISTS multisite;

-- This site: its name, the hybrid-logical-clock floor (the highest stamp received from a peer, so a
-- local write always stamps after anything it could have seen) and a clock offset (tests only:
-- simulates a skewed wall clock).
CREATE TABLE IF NOT EXISTS multisite.site (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  name text NOT NULL,
  hlc_floor bigint NOT NULL DEFAULT 0,
  clock_offset_ms bigint NOT NULL DEFAULT 0,
  schema_version int NOT NULL DEFAULT 1
);

-- The replicated tables and their primary-key columns (the trigger arguments).
CREATE TABLE IF NOT EXISTS multisite.replicated_table (
  tbl text PRIMARY KEY,            -- "schema"."table", quoted, usable in SQL as is
  pk_columns text[] NOT NULL,
  added_at timestamptz NOT NULL DEFAULT now()
);

-- Local changes (captured by the trigger), read by every peer's replicator.
--   h     hybrid logical clock stamp: wall-clock ms * 1024 + logical counter (origin site breaks ties)
--   ins   the incarnation of the row this change applies to: [h, site] of the insert that created it
--   base  what the writer had seen: per changed column the stamp it overwrote (update), the row's
--         highest stamp (insert), or the row's clock {i, c} (delete); tells a concurrent write from a later one
--   xid   the writing transaction, for gap-free reading (see reader.ts)
CREATE TABLE IF NOT EXISTS multisite.change (
  id bigserial PRIMARY KEY,
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  tbl text NOT NULL,
  pk jsonb NOT NULL,
  op "char" NOT NULL CHECK (op IN ('I', 'U', 'D')),
  "row" jsonb,                     -- the entire new row (I, U) or the deleted row (D)
  cols text[],                     -- changed columns (U)
  origin text NOT NULL,
  h bigint NOT NULL,
  ins jsonb,
  base jsonb,
  ts timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS change_xid_idx ON multisite.change (xid, id);
CREATE INDEX IF NOT EXISTS change_row_idx ON multisite.change (tbl, pk);

-- Per-row clock state: incarnation, per-column stamps (absent = the incarnation's), tombstone.
--   s = {"i": [h, site] | null, "c": {col: [h, site]},
--        "d": {"at": [h, site], "n": [h, site] | null, "seen": {"i": .., "c": {..}}} | null}
CREATE TABLE IF NOT EXISTS multisite.row_clock (
  tbl text NOT NULL,
  pk jsonb NOT NULL,
  s jsonb NOT NULL,
  top bigint NOT NULL,             -- the highest stamp in s (the next local write stamps above it)
  PRIMARY KEY (tbl, pk)
);

-- What this site has applied from each peer; updated in the same transaction as the apply.
--   xid_floor, applied: every change of the peer with xid < xid_floor, or xid in applied, is applied.
CREATE TABLE IF NOT EXISTS multisite.watermark (
  peer text PRIMARY KEY,
  xid_floor xid8 NOT NULL DEFAULT '0',
  applied xid8[] NOT NULL DEFAULT '{}',
  changes bigint NOT NULL DEFAULT 0,        -- peer changes consumed (raw, before consolidation)
  rows_applied bigint NOT NULL DEFAULT 0,   -- consolidated row changes applied
  conflicts bigint NOT NULL DEFAULT 0,
  batches bigint NOT NULL DEFAULT 0,
  last_lag_ms bigint,                       -- age of the oldest change of the last batch when applied
  last_change_ts timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Written by each peer's replicator into this database: how far that peer has applied this site's
-- changes. Changes every peer has acknowledged are trimmed.
CREATE TABLE IF NOT EXISTS multisite.ack (
  site text PRIMARY KEY,
  xid_floor xid8 NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every conflict: both versions, who won and why. Nothing disappears unseen.
CREATE TABLE IF NOT EXISTS multisite.conflict (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  peer text NOT NULL,              -- the site whose change was being applied
  tbl text NOT NULL,
  pk jsonb NOT NULL,
  kind text NOT NULL,              -- update-update, insert-insert, update-delete, delete-update, insert-delete, unique-clash, apply-error
  columns text[],
  winner_site text,
  winner_h bigint,
  winner jsonb,                    -- the winning version of the row (null: deleted)
  loser_site text,
  loser_h bigint,
  loser jsonb,                     -- the losing version
  reason text NOT NULL
);
CREATE INDEX IF NOT EXISTS conflict_at_idx ON multisite.conflict (at);

-- The primary key of a row as a JSON object.
CREATE OR REPLACE FUNCTION multisite.pk_of(r jsonb, cols text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_object_agg(c, r -> c) FROM unnest(cols) AS c
$$;

-- Records one row change: stamps it, updates the row clock, appends to multisite.change.
CREATE OR REPLACE FUNCTION multisite.capture_row(p_tbl text, p_pk jsonb, p_op "char", p_row jsonb, p_cols text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_site text; v_floor bigint; v_off bigint;
  v_s jsonb; v_top bigint; v_h bigint; v_stamp jsonb; v_ins jsonb; v_base jsonb; v_c jsonb; c text;
BEGIN
  -- one statement: this site and the row's clock (two SPI statements per row in all)
  SELECT st.name, st.hlc_floor, st.clock_offset_ms, rc.s, rc.top INTO v_site, v_floor, v_off, v_s, v_top
    FROM multisite.site st LEFT JOIN multisite.row_clock rc ON rc.tbl = p_tbl AND rc.pk = p_pk;
  IF v_site IS NULL THEN
    RAISE EXCEPTION 'multisite: site name not set (run multisite migrate)';
  END IF;
  v_top := coalesce(v_top, 0);
  IF v_s IS NULL OR (p_op <> 'I' AND jsonb_typeof(v_s -> 'd') = 'object') THEN
    -- a row that existed before the trigger was installed (or written while capture was off):
    -- unknown incarnation
    v_s := '{"i": null, "c": {}, "d": null}'::jsonb;
  END IF;
  -- Hybrid logical clock: above the wall clock, above anything received, above this row's history.
  v_h := greatest(((extract(epoch FROM clock_timestamp()) * 1000)::bigint + v_off) * 1024, v_floor + 1, v_top + 1);
  v_stamp := jsonb_build_array(v_h, v_site);
  IF p_op = 'I' THEN
    v_ins := v_stamp;
    v_base := to_jsonb(v_top);
    v_s := jsonb_build_object('i', v_stamp, 'c', '{}'::jsonb, 'd', null);
  ELSIF p_op = 'U' THEN
    v_ins := v_s -> 'i';
    v_base := '{}'::jsonb;
    v_c := coalesce(v_s -> 'c', '{}'::jsonb);
    FOREACH c IN ARRAY p_cols LOOP
      v_base := v_base || jsonb_build_object(c, coalesce(v_c -> c -> 0, v_s -> 'i' -> 0, '0'::jsonb));
      v_c := v_c || jsonb_build_object(c, v_stamp);
    END LOOP;
    v_s := jsonb_set(v_s, '{c}', v_c);
  ELSE
    v_ins := v_s -> 'i';
    v_base := jsonb_build_object('i', v_s -> 'i', 'c', coalesce(v_s -> 'c', '{}'::jsonb));  -- what the deleter had seen
    v_s := jsonb_build_object('i', null, 'c', '{}'::jsonb,
             'd', jsonb_build_object('at', v_stamp, 'n', v_s -> 'i', 'seen', v_base));
  END IF;
  WITH rc AS (
    INSERT INTO multisite.row_clock AS rc (tbl, pk, s, top) VALUES (p_tbl, p_pk, v_s, v_h)
      ON CONFLICT (tbl, pk) DO UPDATE SET s = excluded.s, top = excluded.top
      RETURNING 1)
  INSERT INTO multisite.change (tbl, pk, op, "row", cols, origin, h, ins, base)
    SELECT p_tbl, p_pk, p_op, p_row, p_cols, v_site, v_h, v_ins, v_base FROM rc;
END $$;

-- The generic row-level capture trigger. TG_ARGV holds the primary-key columns.
-- Apply sessions set the transaction-local flag multisite.applying = 'on' (SET LOCAL), so changes
-- written by the replicator are not captured again (no echo), while foreign keys stay enforced.
CREATE OR REPLACE FUNCTION multisite.capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_tbl text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  v_new jsonb; v_old jsonb; v_pk jsonb; v_oldpk jsonb; v_cols text[];
  v_one boolean := TG_NARGS = 1;
BEGIN
  IF current_setting('multisite.applying', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    v_new := to_jsonb(NEW);
    v_pk := CASE WHEN v_one THEN jsonb_build_object(TG_ARGV[0], v_new -> TG_ARGV[0]) ELSE multisite.pk_of(v_new, TG_ARGV) END;
    PERFORM multisite.capture_row(v_tbl, v_pk, 'I', v_new, NULL);
  ELSIF TG_OP = 'DELETE' THEN
    v_old := to_jsonb(OLD);
    v_pk := CASE WHEN v_one THEN jsonb_build_object(TG_ARGV[0], v_old -> TG_ARGV[0]) ELSE multisite.pk_of(v_old, TG_ARGV) END;
    PERFORM multisite.capture_row(v_tbl, v_pk, 'D', v_old, NULL);
  ELSE
    v_new := to_jsonb(NEW);
    v_old := to_jsonb(OLD);
    IF v_one THEN
      v_pk := jsonb_build_object(TG_ARGV[0], v_new -> TG_ARGV[0]);
      v_oldpk := jsonb_build_object(TG_ARGV[0], v_old -> TG_ARGV[0]);
    ELSE
      v_pk := multisite.pk_of(v_new, TG_ARGV);
      v_oldpk := multisite.pk_of(v_old, TG_ARGV);
    END IF;
    IF v_pk IS DISTINCT FROM v_oldpk THEN
      -- a primary-key change is a delete of the old key and an insert of the new one
      PERFORM multisite.capture_row(v_tbl, v_oldpk, 'D', v_old, NULL);
      PERFORM multisite.capture_row(v_tbl, v_pk, 'I', v_new, NULL);
    ELSE
      SELECT array_agg(n.key ORDER BY n.key) INTO v_cols
        FROM jsonb_each(v_new) AS n WHERE n.value IS DISTINCT FROM v_old -> n.key;
      IF v_cols IS NOT NULL THEN
        PERFORM multisite.capture_row(v_tbl, v_pk, 'U', v_new, v_cols);
      END IF;
    END IF;
  END IF;
  RETURN NULL;
END $$;

-- Statement-level: one wake-up per statement (NOTIFY is delivered at commit, deduplicated).
CREATE OR REPLACE FUNCTION multisite.notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('multisite.applying', true) IS DISTINCT FROM 'on' THEN
    PERFORM pg_notify('multisite_change', '');
  END IF;
  RETURN NULL;
END $$;

-- Runs the replicator's planned statements in one round trip. Each action is
-- {"sql": text using $1 (row) and $2 (primary key), "row": jsonb, "pk": jsonb}.
-- safe = false: the first error aborts (the caller rolls back to a savepoint and retries safe);
-- safe = true: each action in its own subtransaction; failures are returned, the rest applies.
CREATE OR REPLACE FUNCTION multisite.apply_actions(actions jsonb, safe boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  a jsonb; i int := 0; failed jsonb := '[]'::jsonb; n bigint; v_con text;
BEGIN
  FOR a IN SELECT value FROM jsonb_array_elements(actions) LOOP
    IF safe THEN
      BEGIN
        EXECUTE a ->> 'sql' USING a -> 'row', a -> 'pk';
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 AND (a ->> 'must') = 'true' THEN
          failed := failed || jsonb_build_object('i', i, 'state', 'no_row', 'error', 'the row to change is missing');
        END IF;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_con = CONSTRAINT_NAME;
        failed := failed || jsonb_build_object('i', i, 'state', SQLSTATE, 'error', SQLERRM, 'constraint', v_con);
      END;
    ELSE
      EXECUTE a ->> 'sql' USING a -> 'row', a -> 'pk';
      GET DIAGNOSTICS n = ROW_COUNT;
      IF n = 0 AND (a ->> 'must') = 'true' THEN
        RAISE EXCEPTION 'multisite: row missing' USING ERRCODE = 'P0002';
      END IF;
    END IF;
    i := i + 1;
  END LOOP;
  RETURN failed;
END $$;
