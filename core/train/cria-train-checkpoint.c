/* cria-train-checkpoint.c: what a run needs to continue exactly.
 *
 * checkpoints/checkpoint-STEP/ holds params.safetensors (every trainable
 * tensor under its adapter name), optimizer.safetensors (AdamW's moments,
 * NAME.exp_avg and NAME.exp_avg_sq), trainer_state.json (step, epoch and
 * window, the epoch's data order, the options that shape the numbers, the
 * adapter's own state) and, for PEFT adapters, the adapter as PEFT saves it.
 * The directory is written under a .partial name and renamed when complete. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>

#include "cria-train-private.h"

static void
add_f32 (GArray *weights, const char *name, float *data, gsize n, const CriaTensor *shape_of)
{
  CriaWeight w = { .name = name, .dtype = CRIA_DTYPE_F32, .n_elements = (gint64) n, .data = data };
  w.n_dims = (guint) shape_of->n_dims;
  for (int d = 0; d < shape_of->n_dims; d++)
    w.shape[d] = shape_of->shape[d];
  w.n_bytes = n * sizeof (float);
  g_array_append_val (weights, w);
}

static gboolean
write_weights (const char *path, GArray *weights, GError **error)
{
  g_autoptr (CriaSafetensorsWriter) writer = cria_safetensors_writer_new ();
  for (guint i = 0; i < weights->len; i++)
    if (!cria_safetensors_writer_add (writer, &g_array_index (weights, CriaWeight, i), error))
      return FALSE;
  return cria_safetensors_writer_write (writer, path, error);
}

gboolean
train_write_text (const char *path, const char *text, GError **error)
{
  CriaOutput *out = cria_output_open (path, error);
  if (!out)
    return FALSE;
  if (!cria_output_write (out, text, strlen (text), error)) {
    cria_output_abort (out);
    return FALSE;
  }
  return cria_output_commit (out, error);
}

JsonObject *
train_load_json_object (const char *path, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not a JSON object", path);
    return NULL;
  }
  return json_object_ref (json_node_get_object (root));
}

char *
train_json_text (JsonObject *object, gboolean pretty)
{
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (root, object);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, pretty);
  json_generator_set_root (gen, root);
  char *text = json_generator_to_data (gen, NULL);
  if (pretty) {
    char *with_newline = g_strconcat (text, "\n", NULL);
    g_free (text);
    return with_newline;
  }
  return text;
}

static void
rmtree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  if (dir) {
    const char *name;
    while ((name = g_dir_read_name (dir))) {
      g_autofree char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        rmtree (child);
      else
        g_unlink (child);
    }
  }
  g_rmdir (path);
}

gboolean
train_checkpoint_save (const char *dir, CriaAdapter *adapter, CriaAdamW *opt, JsonObject *state, const char *base_model,
                       GError **error)
{
  g_autofree char *partial = g_strconcat (dir, ".partial", NULL);
  rmtree (partial);
  if (g_mkdir_with_parents (partial, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", partial, g_strerror (errno));
    return FALSE;
  }
  GArray *params = cria_adapter_get_params (adapter);
  g_autoptr (GArray) pw = g_array_new (FALSE, TRUE, sizeof (CriaWeight));
  g_autoptr (GArray) ow = g_array_new (FALSE, TRUE, sizeof (CriaWeight));
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    add_f32 (pw, p->name, p->value->data, (gsize) cria_tensor_numel (p->value), p->value);
    for (int which = 0; which < 2; which++) {
      gsize n = 0;
      float *m = cria_adamw_get_moment (opt, i, which, &n);
      char *name = g_strconcat (p->name, which ? ".exp_avg_sq" : ".exp_avg", NULL);
      g_ptr_array_add (names, name);
      add_f32 (ow, name, m, n, p->value);
    }
  }
  g_autofree char *p_path = g_build_filename (partial, "params.safetensors", NULL);
  g_autofree char *o_path = g_build_filename (partial, "optimizer.safetensors", NULL);
  g_autofree char *s_path = g_build_filename (partial, "trainer_state.json", NULL);
  g_autofree char *text = train_json_text (state, FALSE);
  if (!write_weights (p_path, pw, error) || !write_weights (o_path, ow, error) ||
      !train_write_text (s_path, text, error))
    return FALSE;
  const CriaAdapterVTable *vt = cria_provider_get_vtable (cria_adapter_get_provider (adapter));
  if (vt->peft_type && !cria_adapter_save_peft (adapter, partial, base_model, error))
    return FALSE;
  rmtree (dir);
  if (g_rename (partial, dir) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: %s", dir, g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

static gboolean
read_into (CriaSafetensors *st, const char *name, float *dst, gsize n, GError **error)
{
  const CriaWeight *w = cria_safetensors_lookup (st, name);
  if (!w || w->dtype != CRIA_DTYPE_F32 || (gsize) w->n_elements != n) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: tensor %s is %s (the run has %" G_GSIZE_FORMAT " f32 values: another adapter or model?)",
                 cria_safetensors_get_path (st), name, w ? "of another type or size" : "missing", n);
    return FALSE;
  }
  memcpy (dst, w->data, n * sizeof (float));
  return TRUE;
}

JsonObject *
train_checkpoint_load (const char *dir, CriaAdapter *adapter, CriaAdamW *opt, GError **error)
{
  g_autofree char *s_path = g_build_filename (dir, "trainer_state.json", NULL);
  g_autoptr (JsonObject) state = train_load_json_object (s_path, error);
  if (!state) {
    g_prefix_error (error, "resume: ");
    return NULL;
  }
  g_autofree char *p_path = g_build_filename (dir, "params.safetensors", NULL);
  g_autofree char *o_path = g_build_filename (dir, "optimizer.safetensors", NULL);
  g_autoptr (CriaSafetensors) ps = cria_safetensors_open (p_path, error);
  g_autoptr (CriaSafetensors) os = ps ? cria_safetensors_open (o_path, error) : NULL;
  if (!os)
    return NULL;
  GArray *params = cria_adapter_get_params (adapter);
  if (cria_safetensors_get_n_weights (ps) != params->len) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: %u tensors, the run trains %u", p_path,
                 cria_safetensors_get_n_weights (ps), params->len);
    return NULL;
  }
  for (guint i = 0; i < params->len; i++) {
    CriaAdapterParam *p = &g_array_index (params, CriaAdapterParam, i);
    if (!read_into (ps, p->name, p->value->data, (gsize) cria_tensor_numel (p->value), error))
      return NULL;
    for (int which = 0; which < 2; which++) {
      gsize n = 0;
      float *m = cria_adamw_get_moment (opt, i, which, &n);
      g_autofree char *name = g_strconcat (p->name, which ? ".exp_avg_sq" : ".exp_avg", NULL);
      if (!read_into (os, name, m, n, error))
        return NULL;
    }
  }
  return g_steal_pointer (&state);
}

/* A counter of the state: absent is 0, anything but a non-negative integer an
 * error (a resumed run must not start from a number it made up). */
static gboolean
state_count (JsonObject *s, const char *file, const char *name, gint64 *out, GError **error)
{
  JsonNode *n = json_object_get_member (s, name);
  *out = 0;
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64 || json_node_get_int (n) < 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field %s: expected a non-negative integer, not %s", file,
                 name, cria_json_node_kind (n));
    return FALSE;
  }
  *out = json_node_get_int (n);
  return TRUE;
}

gboolean
cria_train_state_read (JsonObject *s, const char *file, guint n_examples, CriaTrainState *out, GError **error)
{
  memset (out, 0, sizeof *out);
  const struct {
    const char *name;
    gint64 *slot;
  } counts[] = {
    { "step", &out->step },
    { "epoch", &out->epoch },
    { "window", &out->window },
    { "tokens_seen", &out->tokens_seen },
    { "nan_streak", &out->nan_streak },
    { "skipped_steps", &out->skipped_steps },
    { "optimizer_step", &out->optimizer_step },
  };
  for (guint i = 0; i < G_N_ELEMENTS (counts); i++)
    if (!state_count (s, file, counts[i].name, counts[i].slot, error))
      return FALSE;
  if (!cria_json_member_is (s, "options", JSON_TYPE_OBJECT)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field options: expected an object", file);
    return FALSE;
  }
  out->options = cria_json_get_object (s, "options");
  if (out->options) {
    JsonObjectIter it;
    const char *name;
    JsonNode *v;
    json_object_iter_init (&it, out->options);
    while (json_object_iter_next (&it, &name, &v))
      if (!JSON_NODE_HOLDS_NULL (v) && !(JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field options.%s: expected a string, not %s", file, name,
                     cria_json_node_kind (v));
        return FALSE;
      }
  }
  JsonArray *order = cria_json_get_array (s, "data_order");
  if (!order || json_array_get_length (order) != n_examples) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                 "%s: field data_order does not cover the %u training examples", file, n_examples);
    return FALSE;
  }
  /* A permutation: every example once, as the run that wrote it had them. */
  g_autofree guint32 *o = g_new (guint32, MAX (n_examples, 1));
  g_autofree guint8 *seen = g_new0 (guint8, MAX (n_examples, 1));
  for (guint i = 0; i < n_examples; i++) {
    JsonNode *e = json_array_get_element (order, i);
    gint64 v = JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_INT64 ? json_node_get_int (e) : -1;
    if (v < 0 || v >= (gint64) n_examples || seen[v]) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                   "%s: field data_order[%u]: expected each example index from 0 to %u once", file, i, n_examples - 1);
      return FALSE;
    }
    seen[v] = 1;
    o[i] = (guint32) v;
  }
  out->data_order = g_steal_pointer (&o);
  out->adapter_state = json_object_get_member (s, "adapter_state");
  return TRUE;
}
