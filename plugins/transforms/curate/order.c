/* order.c: which records go on, how often and in what order: shuffle, sample,
 * repeat, split.
 *
 *   cria data 'file location=all.jsonl ! shuffle ! split ratio=0.1 eval-location=eval.jsonl ! jsonl location=train.jsonl'
 *
 * shuffle holds every record (a seeded Fisher-Yates at the end). sample holds
 * n records (reservoir) or streams (fraction). repeat streams. split streams
 * with ratio=; with count= it holds every record to pick exactly that many. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "curate.h"

/* ---- shuffle ----------------------------------------------------------------- */

static const CriaPropSpec shuffle_props[] = { SEED_PROP, CRIA_PROP_END };

typedef struct {
  CriaRng rng;
  GPtrArray *held; /* CriaRecord* */
  gint64 n, fraction_ppm;
  gdouble fraction;
  guint64 seen;
} Hold;

static gpointer
hold_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  Hold *self = g_new0 (Hold, 1);
  cria_rng_init (&self->rng, curate_seed (props, ctx));
  self->held = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
  return self;
}

static void
hold_destroy (gpointer data)
{
  Hold *self = data;
  g_ptr_array_unref (self->held);
  g_free (self);
}

static gboolean
shuffle_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Hold *self = data;
  g_ptr_array_add (self->held, record);
  return TRUE;
}

static gboolean
emit_held (Hold *self, CriaEmitter *out, GError **error)
{
  for (guint i = 0; i < self->held->len; i++) {
    CriaRecord *r = g_steal_pointer (&self->held->pdata[i]);
    if (!cria_emit (out, r, error))
      return FALSE;
  }
  g_ptr_array_set_size (self->held, 0);
  return TRUE;
}

static gboolean
shuffle_finish (gpointer data, CriaEmitter *out, GError **error)
{
  Hold *self = data;
  for (guint i = self->held->len; i > 1; i--) {
    guint j = (guint) cria_rng_below (&self->rng, i);
    gpointer t = self->held->pdata[i - 1];
    self->held->pdata[i - 1] = self->held->pdata[j];
    self->held->pdata[j] = t;
  }
  return emit_held (self, out, error);
}

/* ---- sample ------------------------------------------------------------------- */

static const CriaPropSpec sample_props[] = {
  { "n", CRIA_PROP_INT, NULL, 0, (double) G_MAXINT, NULL,
    "keep exactly n records chosen uniformly (holds n; output keeps input order)" },
  { "fraction", CRIA_PROP_DOUBLE, NULL, 0, 1, NULL, "keep each record with this probability (streams)" },
  SEED_PROP,
  CRIA_PROP_END
};

typedef struct {
  CriaRecord *record;
  guint64 position;
} Slot;

static gpointer
sample_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  if (cria_props_is_set (props, "n") == cria_props_is_set (props, "fraction")) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "give either n= or fraction=");
    return NULL;
  }
  Hold *self = hold_create (props, ctx, error);
  self->n = cria_props_is_set (props, "n") ? cria_props_get_int (props, "n") : -1;
  self->fraction = self->n < 0 ? cria_props_get_double (props, "fraction") : 0;
  g_ptr_array_set_free_func (self->held, NULL);
  return self;
}

static void
sample_destroy (gpointer data)
{
  Hold *self = data;
  for (guint i = 0; i < self->held->len; i++) {
    Slot *s = self->held->pdata[i];
    cria_record_free (s->record);
    g_free (s);
  }
  hold_destroy (self);
}

static gboolean
sample_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Hold *self = data;
  guint64 i = self->seen++;
  if (self->n < 0) {
    if (cria_rng_double (&self->rng) < self->fraction)
      return cria_emit (out, record, error);
    cria_record_free (record);
    cria_emit_skip (out, "not-sampled");
    return TRUE;
  }
  Slot *s = g_new (Slot, 1);
  s->record = record;
  s->position = i;
  if ((gint64) self->held->len < self->n) {
    g_ptr_array_add (self->held, s);
    return TRUE;
  }
  /* Reservoir: the i-th record replaces a held one with probability n/(i+1). */
  guint64 j = cria_rng_below (&self->rng, i + 1);
  Slot *gone = s;
  if ((gint64) j < self->n) {
    gone = self->held->pdata[j];
    self->held->pdata[j] = s;
  }
  cria_record_free (gone->record);
  g_free (gone);
  cria_emit_skip (out, "not-sampled");
  return TRUE;
}

static gint
by_position (gconstpointer a, gconstpointer b)
{
  const Slot *x = *(Slot *const *) a, *y = *(Slot *const *) b;
  return x->position < y->position ? -1 : x->position > y->position;
}

static gboolean
sample_finish (gpointer data, CriaEmitter *out, GError **error)
{
  Hold *self = data;
  g_ptr_array_sort (self->held, by_position);
  for (guint i = 0; i < self->held->len; i++) {
    Slot *s = self->held->pdata[i];
    CriaRecord *r = g_steal_pointer (&s->record);
    if (!cria_emit (out, r, error))
      return FALSE;
  }
  return TRUE;
}

/* ---- repeat ------------------------------------------------------------------- */

static const CriaPropSpec repeat_props[] = {
  { "field", CRIA_PROP_STRING, "category", 0, 0, NULL, "the field or metadata member the condition looks at" },
  { "match", CRIA_PROP_STRING, NULL, 0, 0, NULL, "a regular expression the field must match", CRIA_PROP_FLAG_REQUIRED },
  { "times", CRIA_PROP_INT, "2", 1, 1000, NULL, "how many times a matching record is passed on (others once)" },
  CRIA_PROP_END
};

typedef struct {
  char *field;
  GRegex *match;
  gint64 times;
} Repeat;

static gpointer
repeat_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  GRegex *re = g_regex_new (cria_props_get_string (props, "match"), 0, 0, error);
  if (!re) {
    g_prefix_error (error, "match: ");
    return NULL;
  }
  Repeat *self = g_new0 (Repeat, 1);
  self->field = g_strdup (cria_props_get_string (props, "field"));
  self->match = re;
  self->times = cria_props_get_int (props, "times");
  return self;
}

static void
repeat_destroy (gpointer data)
{
  Repeat *self = data;
  g_free (self->field);
  g_regex_unref (self->match);
  g_free (self);
}

static gboolean
repeat_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Repeat *self = data;
  const char *v = cria_record_get_field (record, self->field);
  gint64 n = v && g_regex_match (self->match, v, 0, NULL) ? self->times : 1;
  for (gint64 i = 1; i < n; i++)
    if (!cria_emit (out, cria_record_copy (record), error)) {
      cria_record_free (record);
      return FALSE;
    }
  return cria_emit (out, record, error);
}

/* ---- split -------------------------------------------------------------------- */

static const CriaPropSpec split_props[] = {
  { "eval-location", CRIA_PROP_STRING, NULL, 0, 0, NULL, "the file (JSON lines) the held-out records are written to",
    CRIA_PROP_FLAG_REQUIRED },
  { "ratio", CRIA_PROP_DOUBLE, "0.1", 0, 1, NULL, "share of records held out for evaluation (streams)" },
  { "count", CRIA_PROP_INT, NULL, 0, (double) G_MAXINT, NULL,
    "hold out exactly this many records instead (holds every record)" },
  FIELDS_PROP ("instruction,input,output,messages"),
  SEED_PROP,
  CRIA_PROP_END
};

typedef struct {
  CriaOutput *eval;
  double ratio;
  gint64 count;
  char **fields;
  guint64 seed;
  GArray *keys;    /* count mode: guint64 hash per held record */
  GPtrArray *held; /* count mode */
} Split;

static gpointer
split_create (const CriaProps *props, CriaContext *ctx, GError **error)
{
  CriaOutput *eval = cria_output_open (cria_props_get_string (props, "eval-location"), error);
  if (!eval)
    return NULL;
  Split *self = g_new0 (Split, 1);
  self->eval = eval;
  self->ratio = cria_props_get_double (props, "ratio");
  self->count = cria_props_is_set (props, "count") ? cria_props_get_int (props, "count") : -1;
  self->fields = curate_fields (props);
  self->seed = curate_seed (props, ctx);
  self->keys = g_array_new (FALSE, FALSE, sizeof (guint64));
  self->held = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
  return self;
}

static void
split_destroy (gpointer data)
{
  Split *self = data;
  cria_output_abort (self->eval);
  g_strfreev (self->fields);
  g_array_unref (self->keys);
  g_ptr_array_unref (self->held);
  g_free (self);
}

/* Where a record goes depends on its content only, so a record stays on its
 * side however the corpus is reordered or grown. */
static guint64
content_key (Split *self, const CriaRecord *r)
{
  g_autofree char *text = curate_record_text (r, self->fields);
  return cria_hash64 (text, strlen (text), self->seed);
}

static gboolean
to_eval (Split *self, CriaRecord *r, CriaEmitter *out, GError **error)
{
  g_autofree char *line = cria_record_to_json_line (r);
  cria_record_free (r);
  cria_emit_skip (out, "eval");
  return cria_output_printf (self->eval, error, "%s\n", line);
}

static gboolean
split_push (gpointer data, CriaRecord *record, CriaEmitter *out, GError **error)
{
  Split *self = data;
  guint64 key = content_key (self, record);
  if (self->count >= 0) {
    g_array_append_val (self->keys, key);
    g_ptr_array_add (self->held, record);
    return TRUE;
  }
  if ((double) (key >> 11) * (1.0 / 9007199254740992.0) < self->ratio)
    return to_eval (self, record, out, error);
  return cria_emit (out, record, error);
}

static int
compare_u64 (const void *a, const void *b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : x > y;
}

static gboolean
split_finish (gpointer data, CriaEmitter *out, GError **error)
{
  Split *self = data;
  if (self->count >= 0 && self->held->len) {
    /* The count smallest keys are held out; ties go by position. */
    g_autoptr (GArray) sorted = g_array_copy (self->keys);
    g_array_sort (sorted, compare_u64);
    guint n = (guint) MIN ((gint64) sorted->len, self->count);
    guint64 limit = n ? g_array_index (sorted, guint64, n - 1) : 0;
    guint taken = 0;
    for (guint i = 0; i < self->held->len; i++) {
      CriaRecord *r = g_steal_pointer (&self->held->pdata[i]);
      gboolean held_out = taken < n && g_array_index (self->keys, guint64, i) <= limit;
      taken += held_out;
      if (!(held_out ? to_eval (self, r, out, error) : cria_emit (out, r, error)))
        return FALSE;
    }
    g_ptr_array_set_size (self->held, 0);
  }
  return cria_output_commit (g_steal_pointer (&self->eval), error);
}

static void
split_abort (gpointer data)
{
  Split *self = data;
  cria_output_abort (g_steal_pointer (&self->eval));
}

static const CriaStageVTable shuffle_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable), .create = hold_create, .destroy = hold_destroy, .push = shuffle_push,
  .finish = shuffle_finish,
};
static const CriaStageVTable sample_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = sample_create,
  .destroy = sample_destroy,
  .push = sample_push,
  .finish = sample_finish,
};
static const CriaStageVTable repeat_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = repeat_create,
  .destroy = repeat_destroy,
  .push = repeat_push,
};
static const CriaStageVTable split_vtable = {
  CRIA_VTABLE_INIT (CriaStageVTable),
  .create = split_create,
  .destroy = split_destroy,
  .push = split_push,
  .finish = split_finish,
  .abort = split_abort,
};

static const CriaProviderInfo shuffle_info = {
  .name = "shuffle",
  .description = "Shuffles records with a seeded generator (holds every record)",
  .example = "file location=all.jsonl ! shuffle seed=7 ! jsonl location=shuffled.jsonl",
  .props = shuffle_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo sample_info = {
  .name = "sample",
  .description = "Keeps n records chosen uniformly (reservoir) or a seeded fraction",
  .example = "file location=all.jsonl ! sample n=1000 ! jsonl location=sample.jsonl",
  .props = sample_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo repeat_info = {
  .name = "repeat",
  .description = "Oversamples records whose field matches a pattern",
  .example = "dolly location=dolly.jsonl ! repeat field=category match=^creative times=3 ! jsonl location=out.jsonl",
  .props = repeat_props,
  .rank = CRIA_RANK_PRIMARY,
};

static const CriaProviderInfo split_info = {
  .name = "split",
  .description = "Holds out an evaluation part (by ratio or count, stable by content hash) into eval-location",
  .example = "file location=all.jsonl ! split ratio=0.05 eval-location=eval.jsonl ! jsonl location=train.jsonl",
  .props = split_props,
  .rank = CRIA_RANK_PRIMARY,
};

void cria_order_register (CriaPlugin *plugin);

void
cria_order_register (CriaPlugin *plugin)
{
  cria_plugin_add_transform (plugin, &shuffle_info, &shuffle_vtable);
  cria_plugin_add_transform (plugin, &sample_info, &sample_vtable);
  cria_plugin_add_transform (plugin, &repeat_info, &repeat_vtable);
  cria_plugin_add_transform (plugin, &split_info, &split_vtable);
}
