/* cria-train-data.c: records -> prompt format -> token ids with the prompt
 * masked -> micro-batches, padded or packed.
 *
 * Labels are next-token targets: position t learns ids[t + 1] when that
 * token is learned, so a batch row of n tokens has at most n - 1 targets.
 * Padding goes on the right, where causal attention keeps it away from the
 * real tokens; packed samples get their own segment id and positions that
 * restart at 0, so they never see each other. */
#include "config.h"

#include <string.h>
#include <glib/gstdio.h>

#include "cria-train-private.h"

void
train_set_init (TrainSet *set)
{
  memset (set, 0, sizeof *set);
  set->examples = g_array_new (FALSE, TRUE, sizeof (TrainExample));
}

void
train_set_clear (TrainSet *set)
{
  if (!set->examples)
    return;
  for (guint i = 0; i < set->examples->len; i++) {
    TrainExample *e = &g_array_index (set->examples, TrainExample, i);
    g_free (e->ids);
    g_free (e->learn);
  }
  g_array_unref (set->examples);
  set->examples = NULL;
}

static GPtrArray *
read_jsonl_records (const char *path, GError **error)
{
  g_autoptr (CriaRows) rows = cria_rows_open (path, "jsonl", error);
  if (!rows)
    return NULL;
  g_autoptr (GPtrArray) records = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_record_free);
  for (;;) {
    JsonObject *row = NULL;
    CriaFlow flow = cria_rows_next (rows, &row, error);
    if (flow == CRIA_FLOW_EOS)
      break;
    if (flow == CRIA_FLOW_ERROR)
      return NULL;
    CriaRecord *r = cria_record_from_json (row, error);
    json_object_unref (row);
    if (!r)
      return NULL;
    g_ptr_array_add (records, r);
  }
  return g_steal_pointer (&records);
}

/* The file source understands every record schema cria reads, so a plain
 * file goes through it too, as a one-stage pipeline written in JSON (no
 * quoting of the path). */
GPtrArray *
train_load_records (CriaRegistry *registry, const char *data, GError **error)
{
  g_autofree char *tmpdir = g_dir_make_tmp ("cria-train-XXXXXX", error);
  if (!tmpdir)
    return NULL;
  g_autofree char *tmp = g_build_filename (tmpdir, "records.jsonl", NULL);
  g_autoptr (CriaPipeline) pipeline = NULL;
  if (g_file_test (data, G_FILE_TEST_IS_REGULAR)) {
    g_autoptr (JsonBuilder) b = json_builder_new ();
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "stages");
    json_builder_begin_array (b);
    const char *stages[][2] = { { "file", data }, { "jsonl", tmp } };
    for (guint i = 0; i < 2; i++) {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "provider");
      json_builder_add_string_value (b, stages[i][0]);
      json_builder_set_member_name (b, "properties");
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "location");
      json_builder_add_string_value (b, stages[i][1]);
      json_builder_end_object (b);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
    json_builder_end_object (b);
    g_autoptr (JsonNode) root = json_builder_get_root (b);
    g_autofree char *json = json_to_string (root, FALSE);
    pipeline = cria_pipeline_parse_json (registry, json, -1, data, error);
  } else if (strchr (data, '=') || strchr (data, '!')) {
    g_autofree char *desc = g_strdup_printf ("%s ! jsonl location=%s", data, tmp);
    pipeline = cria_pipeline_parse (registry, desc, error);
  } else {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "data %s: no such file (nor a pipeline)", data);
  }
  GPtrArray *records = NULL;
  if (pipeline && cria_pipeline_run (pipeline, error))
    records = read_jsonl_records (tmp, error);
  g_unlink (tmp);
  g_rmdir (tmpdir);
  return records;
}

static gboolean
encode_append (CriaTokenizer *tok, const char *text, CriaEncodeFlags flags, GArray *ids, GArray *learn,
               gboolean learned, GError **error)
{
  if (!*text && !(flags & CRIA_ENCODE_ADD_SPECIAL))
    return TRUE;
  g_autoptr (CriaEncoding) enc = cria_tokenizer_encode (tok, text, -1, flags, error);
  if (!enc)
    return FALSE;
  g_array_append_vals (ids, enc->ids->data, enc->ids->len);
  for (guint i = 0; i < enc->ids->len; i++)
    g_array_append_val (learn, (guint8){ learned });
  return TRUE;
}

/* Copies ids[at, at + n) and their learn flags into a new example. */
static void
add_example (TrainSet *set, GArray *ids, GArray *learn, guint at, guint n)
{
  TrainExample e = { .n = (gint32) n };
  e.ids = g_memdup2 (&g_array_index (ids, gint32, at), n * sizeof (gint32));
  e.learn = g_memdup2 (&g_array_index (learn, guint8, at), n);
  set->n_tokens += e.n;
  g_array_append_val (set->examples, e);
}

/* One record's example (several when a prompt-less text is cut into pieces). */
static gboolean
build_one (TrainSet *set, const CriaRecord *record, guint i, const char *what, const CriaPromptFormat *format,
           CriaTokenizer *tok, gint64 max_length, gboolean train_on_inputs, gint32 eos, GError **error)
{
  {
    g_autofree char *prompt = NULL, *response = NULL;
    if (!cria_prompt_format_render (format, record, &prompt, &response, error)) {
      g_prefix_error (error, "%s: record %u: ", what, i + 1);
      return FALSE;
    }
    g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
    g_autoptr (GArray) learn = g_array_new (FALSE, FALSE, sizeof (guint8));
    /* The prompt carries the tokenizer's BOS (its post-processor); the
     * response is encoded alone so that the boundary is exact. */
    if (!encode_append (tok, prompt, CRIA_ENCODE_ADD_SPECIAL, ids, learn, train_on_inputs, error) ||
        !encode_append (tok, response, CRIA_ENCODE_DEFAULT, ids, learn, TRUE, error)) {
      g_prefix_error (error, "%s: record %u: ", what, i + 1);
      return FALSE;
    }
    if (eos >= 0) {
      g_array_append_val (ids, eos);
      g_array_append_val (learn, (guint8){ 1 });
    }
    /* A text with no prompt (pretraining, the text format) is cut into
     * consecutive pieces rather than truncated, so that nothing of it is
     * lost; an instruction record keeps its prompt and loses its tail. */
    if (!*prompt && (gint64) ids->len > max_length && !set->pairs) {
      set->n_split++;
      for (guint at = 0; at < ids->len; at += (guint) max_length) {
        guint n = MIN (ids->len - at, (guint) max_length);
        if (n < 2)
          break;
        add_example (set, ids, learn, at, n);
      }
      return TRUE;
    }
    gboolean long_record = (gint64) ids->len > max_length;
    if (long_record && set->on_long == TRAIN_LONG_ERROR) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: record %u: %u tokens, longer than max-length %" G_GINT64_FORMAT
                   " (on-long=error; skip or truncate would go on)",
                   what, i + 1, ids->len, max_length);
      return FALSE;
    }
    if (long_record && set->on_long == TRAIN_LONG_SKIP) {
      set->n_long_skipped++;
      return TRUE;
    }
    if (long_record) {
      set->n_truncated++;
      g_array_set_size (ids, (guint) max_length);
      g_array_set_size (learn, (guint) max_length);
    }
    guint targets = 0;
    for (guint t = 1; t < ids->len; t++)
      targets += g_array_index (learn, guint8, t);
    if (targets == 0 && long_record) {
      /* Its prompt alone fills max-length: one record must not end the run. */
      set->n_truncated--;
      set->n_long_skipped++;
      return TRUE;
    }
    if (targets == 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: record %u: no response token to learn (the response is empty)", what, i + 1);
      return FALSE;
    }
    add_example (set, ids, learn, 0, ids->len);
  }
  return TRUE;
}

gboolean
train_set_build (TrainSet *set, GPtrArray *records, const char *what, const CriaPromptFormat *format,
                 CriaTokenizer *tok, gint64 max_length, gboolean train_on_inputs, gint32 eos, GError **error)
{
  for (guint i = 0; i < records->len; i++) {
    const CriaRecord *r = g_ptr_array_index (records, i);
    if (set->pairs && !cria_record_is_preference (r)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: record %u: field 'chosen': missing (a preference objective trains on pairs: chosen and "
                   "rejected)",
                   what, i + 1);
      return FALSE;
    }
    if (set->pairs || (cria_record_is_preference (r) && !r->output)) {
      /* A pair is two examples, chosen then rejected; supervised training
       * of a pair learns its chosen answer. */
      guint before = set->examples->len;
      gint64 skipped = set->n_long_skipped;
      for (guint side = 0; side < (set->pairs ? 2u : 1u); side++) {
        g_autoptr (CriaRecord) one = cria_record_with_answer (r, side ? r->rejected : r->chosen);
        if (!build_one (set, one, i, what, format, tok, max_length, train_on_inputs, eos, error)) {
          g_prefix_error (error, "%s: ", side ? "rejected" : "chosen");
          return FALSE;
        }
      }
      /* A pair one side of which was skipped as too long goes as a whole:
       * the order and the packing keep chosen and rejected side by side. */
      if (set->pairs && set->examples->len != before + 2) {
        while (set->examples->len > before) {
          TrainExample *e = &g_array_index (set->examples, TrainExample, set->examples->len - 1);
          set->n_tokens -= e->n;
          g_free (e->ids);
          g_free (e->learn);
          g_array_set_size (set->examples, set->examples->len - 1);
        }
        set->n_long_skipped = skipped + 1;
      }
    } else if (!build_one (set, r, i, what, format, tok, max_length, train_on_inputs, eos, error)) {
      return FALSE;
    }
  }
  return TRUE;
}

guint32 *
train_set_order (const TrainSet *set, guint64 seed, gint64 epoch, gboolean shuffle)
{
  guint n = set->examples->len;
  if (!shuffle) {
    guint32 *order = g_new (guint32, MAX (n, 1));
    for (guint i = 0; i < n; i++)
      order[i] = i;
    return order;
  }
  if (!set->pairs)
    return train_epoch_order (n, seed, epoch);
  g_autofree guint32 *pairs = train_epoch_order (n / 2, seed, epoch);
  guint32 *order = g_new (guint32, MAX (n, 1));
  for (guint i = 0; i < n / 2; i++) {
    order[2 * i] = 2 * pairs[i];
    order[2 * i + 1] = 2 * pairs[i] + 1;
  }
  return order;
}

guint32 *
train_epoch_order (guint n, guint64 seed, gint64 epoch)
{
  guint32 *order = g_new (guint32, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    order[i] = i;
  guint32 s[4] = { (guint32) seed, (guint32) (seed >> 32), (guint32) epoch, 0x5eed };
  g_autoptr (GRand) rand = g_rand_new_with_seed_array (s, 4);
  for (guint i = n; i > 1; i--) {
    guint j = (guint) g_rand_int_range (rand, 0, (gint32) i);
    guint32 t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
  return order;
}

static GArray *
new_row (void)
{
  return g_array_new (FALSE, FALSE, sizeof (guint32));
}

GPtrArray *
train_plan_epoch (const TrainSet *set, const guint32 *order, guint n, gint64 batch, gint64 max_length, gboolean packing)
{
  GPtrArray *rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  gint64 fill = 0;
  /* A pair is one unit: chosen and rejected share a row, kept apart by
   * segment ids, in rows twice as long; packing puts more pairs in it. */
  guint unit = set->pairs ? 2 : 1;
  gint64 capacity = unit * max_length;
  for (guint i = 0; i + unit <= n; i += unit) {
    gint64 len = 0;
    for (guint k = 0; k < unit; k++)
      len += g_array_index (set->examples, TrainExample, order[i + k]).n;
    if (!packing || rows->len == 0 || fill + len > capacity) {
      g_ptr_array_add (rows, new_row ());
      fill = 0;
    }
    for (guint k = 0; k < unit; k++)
      g_array_append_val (g_ptr_array_index (rows, rows->len - 1), order[i + k]);
    fill += len;
  }
  GPtrArray *batches = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  for (guint i = 0; i < rows->len; i += (guint) batch) {
    GPtrArray *mb = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
    for (guint j = i; j < rows->len && j < i + batch; j++)
      g_ptr_array_add (mb, g_array_ref (g_ptr_array_index (rows, j)));
    g_ptr_array_add (batches, mb);
  }
  g_ptr_array_unref (rows);
  return batches;
}

void
train_batch_clear (TrainBatch *b)
{
  g_clear_pointer (&b->ids, cria_tensor_unref);
  g_clear_pointer (&b->positions, cria_tensor_unref);
  g_clear_pointer (&b->segments, cria_tensor_unref);
  g_clear_pointer (&b->labels, cria_tensor_unref);
  g_clear_pointer (&b->owner, g_free);
  g_clear_pointer (&b->members, g_array_unref);
}

void
train_batch_fill (const TrainSet *set, GPtrArray *rows, gint64 max_length, gboolean packing, gint32 pad,
                  TrainBatch *out)
{
  gint64 longest = 1;
  for (guint r = 0; r < rows->len; r++) {
    GArray *row = g_ptr_array_index (rows, r);
    gint64 len = 0;
    for (guint k = 0; k < row->len; k++)
      len += g_array_index (set->examples, TrainExample, g_array_index (row, guint32, k)).n;
    longest = MAX (longest, len);
  }
  /* Lengths rounded up to 16 keep the number of distinct graphs small. */
  gint64 T = MIN ((longest + 15) / 16 * 16, MAX (max_length, longest));
  /* Short batches are filled with empty rows so every graph has B rows. */
  gint64 B = out->B > 0 ? out->B : (gint64) rows->len;
  train_batch_clear (out);
  out->B = B;
  out->T = T;
  gint64 shape[] = { B, T }, flat[] = { B * T };
  out->ids = cria_tensor_new (CRIA_DTYPE_I32, 2, shape);
  out->positions = cria_tensor_new (CRIA_DTYPE_I32, 2, shape);
  out->segments = packing ? cria_tensor_new (CRIA_DTYPE_I32, 2, shape) : NULL;
  out->labels = cria_tensor_new (CRIA_DTYPE_I32, 1, flat);
  gint32 *ids = out->ids->data, *pos = out->positions->data, *labels = out->labels->data;
  gint32 *seg = packing ? out->segments->data : NULL;
  out->n_targets = out->n_tokens = 0;
  out->owner = g_new (gint32, B * T);
  out->members = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (gint64 i = 0; i < B * T; i++)
    out->owner[i] = -1;
  for (gint64 i = 0; i < B * T; i++) {
    ids[i] = pad;
    labels[i] = CRIA_IGNORE_INDEX;
  }
  for (guint r = 0; r < rows->len; r++) {
    GArray *row = g_ptr_array_index (rows, r);
    gint64 at = (gint64) r * T;
    gint32 segment = 0;
    for (guint k = 0; k < row->len; k++) {
      const TrainExample *e = &g_array_index (set->examples, TrainExample, g_array_index (row, guint32, k));
      gint32 member = (gint32) out->members->len;
      g_array_append_val (out->members, g_array_index (row, guint32, k));
      segment++;
      for (gint32 t = 0; t < e->n; t++, at++) {
        ids[at] = e->ids[t];
        pos[at] = t;
        if (seg)
          seg[at] = segment;
        if (t + 1 < e->n && e->learn[t + 1]) {
          labels[at] = e->ids[t + 1];
          out->owner[at] = member;
          out->n_targets++;
        }
      }
      out->n_tokens += e->n;
    }
    /* Padding: a segment of its own, positions going on. */
    for (gint32 p = 0; at < (gint64) (r + 1) * T; at++, p++) {
      pos[at] = p;
      if (seg)
        seg[at] = segment + 1;
    }
  }
  for (gint64 r = (gint64) rows->len; r < B; r++)
    for (gint64 t = 0; t < T; t++) {
      pos[r * T + t] = (gint32) t;
      if (seg)
        seg[r * T + t] = 1;
    }
}
