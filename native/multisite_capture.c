/*
 * multisite native capture: the statement-level capture trigger in C (issue 14).
 *
 * It writes the same rows into multisite.change as the PL/pgSQL capture functions migrate.ts
 * generates (table, key as jsonb, operation, changed columns; id, xid and capture time by the
 * table's defaults), so everything downstream (stamping, reading, applying) is unchanged.
 * test/integration/replication/capture-native.test.ts runs one set of statements against both and
 * compares the change rows.
 *
 * WHY in C: on a CPU-bound pgbench the PL/pgSQL capture costs ~110 µs per captured statement
 * (function entry, the transition-table join planned and run through SPI, jsonb built per row):
 * about half of pgbench's own ~900 µs per tpcb-like transaction (bench/replication-profile.ts).
 * Here one saved plan per table inserts each row's change, with the key's typed datums as
 * parameters, and an update's changed columns are found by comparing datums.
 *
 *   CREATE TRIGGER ... AFTER UPDATE ON t REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
 *     FOR EACH STATEMENT EXECUTE FUNCTION multisite.capture_native('<tbl as stored>', 'pk1', ...);
 *
 * Semantics, as the PL/pgSQL capture:
 *  - sessions with multisite.applying = 'on' (the replicator's apply) are not captured;
 *  - insert → 'I', delete → 'D', update → 'U' with the changed columns sorted by name (generated
 *    and dropped columns never count), or nothing when no column changed;
 *  - a column changed when its values are distinct by the type's equality (typcache's default
 *    equality; types without one are compared by their text form);
 *  - an update that changed a key is paired by key in SQL (old key: 'D' first, new key: 'I', a
 *    key on both sides 'U' with the columns that differ as JSON), as the PL/pgSQL capture pairs.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(multisite_capture);

/* a primary key has at most INDEX_MAX_KEYS (32) columns */
#define MAX_PK INDEX_MAX_KEYS

/* How two values of one column are compared. */
typedef struct ColumnCompare
{
	bool		counts;			/* not dropped, not generated */
	bool		byval;
	int16		len;
	bool		has_eq;
	FmgrInfo	eq;				/* the type's default equality, when it has one */
	FmgrInfo	out;			/* else its output function */
	Oid			collation;
} ColumnCompare;

/* What the trigger needs of one table, kept across statements (rebuilt when the table changes). */
typedef struct TableEntry
{
	Oid			relid;			/* hash key */
	MemoryContext cxt;			/* everything below lives here */
	char	   *args;			/* the trigger's arguments, joined: the entry is for these */
	int			natts;
	Oid		   *types;			/* atttypid per attribute, to notice ALTER TABLE */
	char	   *shape;			/* attisdropped / attgenerated per attribute, likewise */
	ColumnCompare *cols;
	int		   *by_name;		/* counted attribute indexes, sorted by name */
	int			ncounted;
	int			npk;
	int			pk[MAX_PK];		/* attribute indexes of the key columns */
	SPIPlanPtr	insert;			/* INSERT INTO multisite.change ... VALUES (tbl, key, op, cols) */
	SPIPlanPtr	paired;			/* the key-change pairing, planned on first use */
} TableEntry;

static HTAB *tables = NULL;

static const char *const PAIRED_SQL =
"INSERT INTO multisite.change (tbl, pk, op, cols) "
"SELECT $1, y.pk, y.op, y.cols FROM ("
"  SELECT CASE WHEN o.k IS NULL THEN 'I' WHEN n.k IS NULL THEN 'D' ELSE 'U' END::\"char\" AS op,"
"         coalesce(n.k, o.k) AS pk,"
"         CASE WHEN n.k IS NOT NULL AND o.k IS NOT NULL THEN"
"           coalesce((SELECT array_agg(e.key ORDER BY e.key COLLATE \"C\") FROM jsonb_each(n.j) e"
"                      WHERE e.key = ANY ($3) AND e.value IS DISTINCT FROM o.j -> e.key), '{}') END AS cols,"
"         CASE WHEN n.k IS NULL THEN 0 ELSE 1 END AS ord"
"    FROM (SELECT x.j, (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(x.j) e WHERE e.key = ANY ($2)) AS k"
"            FROM (SELECT to_jsonb(r) AS j FROM new_rows r) x) n"
"    FULL JOIN (SELECT x.j, (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(x.j) e WHERE e.key = ANY ($2)) AS k"
"            FROM (SELECT to_jsonb(r) AS j FROM old_rows r) x) o ON n.k = o.k) y "
" WHERE y.op <> 'U' OR cardinality(y.cols) > 0 "
" ORDER BY y.ord";

static int
by_attname(const void *a, const void *b, void *desc)
{
	Form_pg_attribute x = TupleDescAttr((TupleDesc) desc, *(const int *) a);
	Form_pg_attribute y = TupleDescAttr((TupleDesc) desc, *(const int *) b);

	return strcmp(NameStr(x->attname), NameStr(y->attname));
}

static char *
joined_args(Trigger *tg)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < tg->tgnargs; i++)
		appendStringInfo(&s, "%s\x01", tg->tgargs[i]);
	return s.data;
}

/* The entry still describes this table as it is now, for these trigger arguments. */
static bool
entry_current(TableEntry *e, TupleDesc td, const char *args)
{
	/* no insert plan: an error interrupted the entry's last build (it is built again) */
	if (e->cxt == NULL || e->insert == NULL || e->natts != td->natts || strcmp(e->args, args) != 0)
		return false;
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i);

		if (e->types[i] != a->atttypid ||
			e->shape[2 * i] != (a->attisdropped ? 'x' : '-') || e->shape[2 * i + 1] != a->attgenerated)
			return false;
	}
	return true;
}

static void
entry_forget(TableEntry *e)
{
	if (e->insert)
		SPI_freeplan(e->insert);
	if (e->paired)
		SPI_freeplan(e->paired);
	if (e->cxt)
		MemoryContextDelete(e->cxt);
	e->cxt = NULL;
	e->insert = NULL;
	e->paired = NULL;
}

static void
describe_columns(TableEntry *e, TupleDesc td)
{
	e->natts = td->natts;
	e->types = palloc(sizeof(Oid) * td->natts);
	e->shape = palloc(2 * td->natts + 1);
	e->cols = palloc0(sizeof(ColumnCompare) * td->natts);
	e->by_name = palloc(sizeof(int) * td->natts);
	e->ncounted = 0;
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i);
		ColumnCompare *c = &e->cols[i];

		e->types[i] = a->atttypid;
		e->shape[2 * i] = a->attisdropped ? 'x' : '-';
		e->shape[2 * i + 1] = a->attgenerated;
		c->counts = !a->attisdropped && a->attgenerated == '\0';
		if (!c->counts)
			continue;
		e->by_name[e->ncounted++] = i;
		c->byval = a->attbyval;
		c->len = a->attlen;
		c->collation = a->attcollation;
		{
			TypeCacheEntry *tc = lookup_type_cache(a->atttypid, TYPECACHE_EQ_OPR_FINFO);

			c->has_eq = OidIsValid(tc->eq_opr_finfo.fn_oid);
			if (c->has_eq)
				fmgr_info_cxt(tc->eq_opr_finfo.fn_oid, &c->eq, e->cxt);
			else
			{
				Oid			fn;
				bool		varlena;

				getTypeOutputInfo(a->atttypid, &fn, &varlena);
				fmgr_info_cxt(fn, &c->out, e->cxt);
			}
		}
	}
	qsort_arg(e->by_name, e->ncounted, sizeof(int), by_attname, td);
}

static void
find_keys(TableEntry *e, Trigger *tg, TupleDesc td, const char *tbl)
{
	if (tg->tgnargs < 2)
		ereport(ERROR, (errmsg("multisite.capture_native needs the table and its key columns as trigger arguments"),
						errhint("Run multisite migrate: it creates the capture triggers.")));
	e->npk = tg->tgnargs - 1;
	if (e->npk > MAX_PK)
		ereport(ERROR, (errmsg("multisite.capture_native: table %s has %d key columns, at most %d are supported",
							   tbl, e->npk, MAX_PK)));
	for (int k = 0; k < e->npk; k++)
	{
		const char *name = tg->tgargs[k + 1];

		e->pk[k] = -1;
		for (int i = 0; i < td->natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(td, i);

			if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
				e->pk[k] = i;
		}
		if (e->pk[k] < 0)
			ereport(ERROR, (errmsg("multisite.capture_native: table %s has no key column \"%s\"", tbl, name),
							errhint("Run multisite migrate again: the table's key changed since it ran.")));
	}
}

/* INSERT INTO multisite.change (tbl, pk, op, cols) VALUES ($1, jsonb_build_object('k', $2, ...), $n, $n+1) */
static void
prepare_insert(TableEntry *e, Trigger *tg, TupleDesc td)
{
	StringInfoData sql;
	Oid			types[MAX_PK + 3];

	initStringInfo(&sql);
	appendStringInfoString(&sql, "INSERT INTO multisite.change (tbl, pk, op, cols) VALUES ($1, jsonb_build_object(");
	types[0] = TEXTOID;
	for (int k = 0; k < e->npk; k++)
	{
		appendStringInfo(&sql, "%s%s, $%d", k ? ", " : "", quote_literal_cstr(tg->tgargs[k + 1]), k + 2);
		types[k + 1] = TupleDescAttr(td, e->pk[k])->atttypid;
	}
	appendStringInfo(&sql, "), $%d, $%d)", e->npk + 2, e->npk + 3);
	types[e->npk + 1] = CHAROID;
	types[e->npk + 2] = TEXTARRAYOID;
	e->insert = SPI_prepare(sql.data, e->npk + 3, types);
	if (e->insert == NULL)
		elog(ERROR, "multisite.capture_native: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(e->insert);
}

static TableEntry *
table_entry(Relation rel, Trigger *tg, const char *tbl)
{
	TupleDesc	td = RelationGetDescr(rel);
	Oid			relid = RelationGetRelid(rel);
	char	   *args = joined_args(tg);
	bool		found;
	TableEntry *e;

	if (tables == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(TableEntry);
		tables = hash_create("multisite capture tables", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	e = hash_search(tables, &relid, HASH_ENTER, &found);
	if (!found)
	{
		e->cxt = NULL;
		e->insert = NULL;
		e->paired = NULL;
	}
	if (entry_current(e, td, args))
		return e;
	entry_forget(e);
	e->cxt = AllocSetContextCreate(TopMemoryContext, "multisite capture table", ALLOCSET_SMALL_SIZES);
	{
		MemoryContext old = MemoryContextSwitchTo(e->cxt);

		e->args = pstrdup(args);
		describe_columns(e, td);
		find_keys(e, tg, td, tbl);
		MemoryContextSwitchTo(old);
	}
	prepare_insert(e, tg, td);
	return e;
}

static bool
column_differs(ColumnCompare *c, Datum a, bool anull, Datum b, bool bnull)
{
	if (anull || bnull)
		return anull != bnull;
	if (datumIsEqual(a, b, c->byval, c->len))
		return false;
	if (c->has_eq)
		return !DatumGetBool(FunctionCall2Coll(&c->eq, c->collation, a, b));
	return strcmp(OutputFunctionCall(&c->out, a), OutputFunctionCall(&c->out, b)) != 0;
}

static void
record_change(TableEntry *e, text *tbl, TupleTableSlot *row, char op, ArrayType *cols)
{
	Datum		values[MAX_PK + 3];
	char		nulls[MAX_PK + 3];
	int			rc;

	values[0] = PointerGetDatum(tbl);
	nulls[0] = ' ';
	for (int k = 0; k < e->npk; k++)
	{
		values[k + 1] = row->tts_values[e->pk[k]];
		nulls[k + 1] = row->tts_isnull[e->pk[k]] ? 'n' : ' ';
	}
	values[e->npk + 1] = CharGetDatum(op);
	nulls[e->npk + 1] = ' ';
	values[e->npk + 2] = PointerGetDatum(cols);
	nulls[e->npk + 2] = cols ? ' ' : 'n';
	rc = SPI_execute_plan(e->insert, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "multisite.capture_native: insert into multisite.change failed: %s", SPI_result_code_string(rc));
}

static Tuplestorestate *
transition_table(Tuplestorestate *ts, const char *which, const char *tbl)
{
	if (ts == NULL)
		ereport(ERROR, (errmsg("multisite.capture_native on %s has no %s transition table", tbl, which),
						errhint("Run multisite migrate: it creates the capture triggers with REFERENCING ... TABLE.")));
	/* a read pointer of our own, from the start: other triggers may read the same table */
	tuplestore_select_read_pointer(ts, tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND));
	tuplestore_rescan(ts);
	return ts;
}

/* Every row of one transition table as one operation (insert or delete statements). */
static void
capture_all(TableEntry *e, text *tbl, Tuplestorestate *ts, TupleTableSlot *slot, char op, MemoryContext tmp)
{
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		MemoryContext old = MemoryContextSwitchTo(tmp);

		slot_getallattrs(slot);
		record_change(e, tbl, slot, op, NULL);
		MemoryContextSwitchTo(old);
		MemoryContextReset(tmp);
	}
}

static bool
same_key(TableEntry *e, TupleTableSlot *o, TupleTableSlot *n)
{
	for (int k = 0; k < e->npk; k++)
	{
		int			i = e->pk[k];

		if (o->tts_isnull[i] || n->tts_isnull[i] ||
			!datumIsEqual(o->tts_values[i], n->tts_values[i], e->cols[i].byval, e->cols[i].len))
			return false;
	}
	return true;
}

/* The changed columns of one updated row, sorted by name; NULL when none changed. */
static ArrayType *
changed_columns(TableEntry *e, TupleTableSlot *o, TupleTableSlot *n)
{
	Datum	   *names = palloc(sizeof(Datum) * e->ncounted);
	int			count = 0;

	for (int j = 0; j < e->ncounted; j++)
	{
		int			i = e->by_name[j];

		if (column_differs(&e->cols[i], o->tts_values[i], o->tts_isnull[i], n->tts_values[i], n->tts_isnull[i]))
			names[count++] = CStringGetTextDatum(NameStr(TupleDescAttr(o->tts_tupleDescriptor, i)->attname));
	}
	if (count == 0)
		return NULL;
	return construct_array(names, count, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * An update's old and new transition tables hold each updated row at the same position. When
 * every row kept its key, pair them by position; returns false (and records nothing) otherwise.
 */
static bool
capture_update_in_place(TableEntry *e, text *tbl, TriggerData *td, TupleTableSlot *o, TupleTableSlot *n,
						MemoryContext tmp)
{
	const char *tblname = td->tg_trigger->tgargs[0];
	Tuplestorestate *olds = transition_table(td->tg_oldtable, "old", tblname);
	Tuplestorestate *news = transition_table(td->tg_newtable, "new", tblname);

	for (;;)
	{
		bool		more_o = tuplestore_gettupleslot(olds, true, false, o);
		bool		more_n = tuplestore_gettupleslot(news, true, false, n);

		if (!more_o || !more_n)
		{
			if (more_o != more_n)
				return false;
			break;
		}
		slot_getallattrs(o);
		slot_getallattrs(n);
		if (!same_key(e, o, n))
			return false;
	}
	tuplestore_rescan(olds);
	tuplestore_rescan(news);
	while (tuplestore_gettupleslot(olds, true, false, o) && tuplestore_gettupleslot(news, true, false, n))
	{
		MemoryContext old = MemoryContextSwitchTo(tmp);
		ArrayType  *cols;

		slot_getallattrs(o);
		slot_getallattrs(n);
		cols = changed_columns(e, o, n);
		if (cols)
			record_change(e, tbl, n, 'U', cols);
		MemoryContextSwitchTo(old);
		MemoryContextReset(tmp);
	}
	return true;
}

static ArrayType *
text_array(char **items, int count)
{
	Datum	   *d = palloc(sizeof(Datum) * (count > 0 ? count : 1));

	for (int i = 0; i < count; i++)
		d[i] = CStringGetTextDatum(items[i]);
	return construct_array(d, count, TEXTOID, -1, false, TYPALIGN_INT);
}

/* An update that changed a key: pair old and new rows by key in SQL (rare: one statement's cost). */
static void
capture_update_paired(TableEntry *e, text *tbl, TriggerData *td, TupleDesc desc)
{
	char	  **keys = palloc(sizeof(char *) * e->npk);
	char	  **counted = palloc(sizeof(char *) * (e->ncounted > 0 ? e->ncounted : 1));
	Datum		values[3];
	int			rc;

	for (int k = 0; k < e->npk; k++)
		keys[k] = td->tg_trigger->tgargs[k + 1];
	for (int j = 0; j < e->ncounted; j++)
		counted[j] = NameStr(TupleDescAttr(desc, e->by_name[j])->attname);
	if (e->paired == NULL)
	{
		Oid			types[3] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID};

		e->paired = SPI_prepare(PAIRED_SQL, 3, types);
		if (e->paired == NULL)
			elog(ERROR, "multisite.capture_native: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(e->paired);
	}
	values[0] = PointerGetDatum(tbl);
	values[1] = PointerGetDatum(text_array(keys, e->npk));
	values[2] = PointerGetDatum(text_array(counted, e->ncounted));
	rc = SPI_execute_plan(e->paired, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "multisite.capture_native: insert into multisite.change failed: %s", SPI_result_code_string(rc));
}

Datum
multisite_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *applying;
	const char *tblname;
	text	   *tbl;
	TableEntry *e;
	TupleDesc	desc;
	TupleTableSlot *o;
	TupleTableSlot *n;
	MemoryContext tmp;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR, (errmsg("multisite.capture_native must be called as an AFTER ... FOR EACH STATEMENT trigger")));
	/* the replicator's apply is not captured: no echo */
	applying = GetConfigOption("multisite.applying", true, false);
	if (applying != NULL && strcmp(applying, "on") == 0)
		return PointerGetDatum(NULL);
	if (td->tg_trigger->tgnargs < 1)
		ereport(ERROR, (errmsg("multisite.capture_native needs the table and its key columns as trigger arguments")));
	tblname = td->tg_trigger->tgargs[0];
	tbl = cstring_to_text(tblname);
	desc = RelationGetDescr(td->tg_relation);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "multisite.capture_native: SPI_connect failed");
	e = table_entry(td->tg_relation, td->tg_trigger, tblname);
	o = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	n = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tmp = AllocSetContextCreate(CurrentMemoryContext, "multisite capture row", ALLOCSET_SMALL_SIZES);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		capture_all(e, tbl, transition_table(td->tg_newtable, "new", tblname), n, 'I', tmp);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		capture_all(e, tbl, transition_table(td->tg_oldtable, "old", tblname), o, 'D', tmp);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		if (!capture_update_in_place(e, tbl, td, o, n, tmp))
		{
			if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
				elog(ERROR, "multisite.capture_native: SPI_register_trigger_data failed");
			capture_update_paired(e, tbl, td, desc);
		}
	}
	ExecDropSingleTupleTableSlot(o);
	ExecDropSingleTupleTableSlot(n);
	MemoryContextDelete(tmp);
	SPI_finish();
	return PointerGetDatum(NULL);
}
