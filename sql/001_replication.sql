-- multisite replication: schema and apply helper (capture: per-table functions written by migrate.ts, see 002).
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
--   h     hybrid logical clock stamp in 1/1024 ms: capture time, raised past what was seen (origin site breaks ties)
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
