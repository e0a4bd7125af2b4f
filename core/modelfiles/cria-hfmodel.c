/* cria-hfmodel.c: opening, checking and writing Hugging Face model directories.
 *
 *   cria model info tests/models/tiny-qwen2
 */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include <cria/cria-error.h>
#include <cria/cria-hfmodel.h>
#include <cria/cria-input.h>
#include <cria/cria-output.h>
#include <cria/cria-rows.h>
#include <cria/cria-torchfile.h>

#include "cria-modelfiles-private.h"

struct _CriaHfModel {
  char *dir;
  CriaHfConfig *config;
  JsonObject *generation;
  const char *weights_file;
  GPtrArray *files; /* CriaSafetensors or one CriaTorchFile */
  gboolean torch;
  GPtrArray *weights;  /* const CriaWeight *, in file order */
  GHashTable *by_name; /* canonical name -> const CriaWeight * */
};

void
cria_hf_model_free (CriaHfModel *m)
{
  if (!m)
    return;
  g_clear_pointer (&m->by_name, g_hash_table_unref);
  g_clear_pointer (&m->weights, g_ptr_array_unref);
  g_clear_pointer (&m->files, g_ptr_array_unref);
  g_clear_pointer (&m->generation, json_object_unref);
  cria_hf_config_free (m->config);
  g_free (m->dir);
  g_free (m);
}

static gboolean
add_weight (CriaHfModel *m, const CriaWeight *w, const char *file, GError **error)
{
  if (g_hash_table_contains (m->by_name, w->name)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: tensor '%s' is also in another shard", file, w->name);
    return FALSE;
  }
  g_hash_table_insert (m->by_name, g_strdup (w->name), (gpointer) w);
  g_ptr_array_add (m->weights, (gpointer) w);
  return TRUE;
}

static gboolean
add_safetensors (CriaHfModel *m, const char *path, GError **error)
{
  CriaSafetensors *st = cria_safetensors_open (path, error);
  if (!st)
    return FALSE;
  g_ptr_array_add (m->files, st);
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++)
    if (!add_weight (m, cria_safetensors_get_weight (st, i), path, error))
      return FALSE;
  return TRUE;
}

/* model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}}.
 * Every shard must exist, hold every tensor mapped to it and nothing else. */
static gboolean
add_sharded (CriaHfModel *m, const char *index_path, GError **error)
{
  g_autoptr (JsonNode) root = cria_json_load_file (index_path, error);
  if (!root)
    return FALSE;
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *map = o ? json_object_get_member (o, "weight_map") : NULL;
  if (!map || !JSON_NODE_HOLDS_OBJECT (map)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: weight_map: missing or not an object", index_path);
    return FALSE;
  }
  g_autoptr (GHashTable) shards = g_hash_table_new (g_str_hash, g_str_equal); /* shard -> its tensor count */
  g_autoptr (GPtrArray) order = g_ptr_array_new ();
  JsonObjectIter it;
  const char *tensor;
  JsonNode *v;
  json_object_iter_init (&it, json_node_get_object (map));
  while (json_object_iter_next (&it, &tensor, &v)) {
    const char *shard = JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
                            ? json_node_get_string (v)
                            : NULL;
    if (!shard || !*shard || strchr (shard, '/') || strcmp (shard, "..") == 0) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: weight_map: '%s' does not name a file in the directory",
                   index_path, tensor);
      return FALSE;
    }
    if (!g_hash_table_contains (shards, shard))
      g_ptr_array_add (order, (gpointer) shard);
    g_hash_table_insert (shards, (gpointer) shard,
                         GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (shards, shard)) + 1));
  }
  for (guint i = 0; i < order->len; i++) {
    g_autofree char *path = g_build_filename (m->dir, order->pdata[i], NULL);
    if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: weight_map names shard %s, which is missing",
                   index_path, (const char *) order->pdata[i]);
      return FALSE;
    }
    if (!add_safetensors (m, path, error))
      return FALSE;
    CriaSafetensors *st = m->files->pdata[m->files->len - 1];
    for (guint t = 0; t < cria_safetensors_get_n_weights (st); t++) {
      const char *name = cria_safetensors_get_weight (st, t)->name;
      JsonNode *where = json_object_get_member (json_node_get_object (map), name);
      if (!where || strcmp (json_node_get_string (where), order->pdata[i]) != 0) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: tensor '%s' is in %s but weight_map does not say so",
                     index_path, name, (const char *) order->pdata[i]);
        return FALSE;
      }
    }
    guint listed = GPOINTER_TO_UINT (g_hash_table_lookup (shards, order->pdata[i]));
    if (listed != cria_safetensors_get_n_weights (st)) {
      json_object_iter_init (&it, json_node_get_object (map));
      while (json_object_iter_next (&it, &tensor, &v))
        if (strcmp (json_node_get_string (v), order->pdata[i]) == 0 && !cria_safetensors_lookup (st, tensor))
          break;
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: weight_map puts tensor '%s' in %s, which lacks it",
                   index_path, tensor, (const char *) order->pdata[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
add_torch (CriaHfModel *m, const char *path, GError **error)
{
  CriaTorchFile *tf = cria_torch_file_open (path, error);
  if (!tf)
    return FALSE;
  g_ptr_array_add (m->files, tf);
  for (guint i = 0; i < cria_torch_file_get_n_weights (tf); i++)
    if (!add_weight (m, cria_torch_file_get_weight (tf, i), path, error))
      return FALSE;
  return TRUE;
}

static gboolean
load_generation (CriaHfModel *m, GError **error)
{
  g_autofree char *path = g_build_filename (m->dir, "generation_config.json", NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return TRUE;
  g_autoptr (JsonNode) root = cria_json_load_file (path, error);
  if (!root)
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: not a JSON object", path);
    return FALSE;
  }
  m->generation = json_object_ref (json_node_get_object (root));
  return TRUE;
}

static CriaHfModel *model_open (const char *dir, GError **error);

CriaHfModel *
cria_hf_model_open (const char *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  CriaHfModel *m = model_open (dir, error);
  mf_one_line (error);
  return m;
}

static CriaHfModel *
model_open (const char *dir, GError **error)
{
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "%s: not a directory", dir);
    return NULL;
  }
  g_autoptr (CriaHfModel) m = g_new0 (CriaHfModel, 1);
  m->dir = g_strdup (dir);
  g_autofree char *config = g_build_filename (dir, "config.json", NULL);
  if (!(m->config = cria_hf_config_load (config, error)) || !load_generation (m, error))
    return NULL;
  m->weights = g_ptr_array_new ();
  m->by_name = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  static const char *const candidates[] = { "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin" };
  for (guint i = 0; i < G_N_ELEMENTS (candidates) && !m->weights_file; i++) {
    g_autofree char *path = g_build_filename (dir, candidates[i], NULL);
    if (!g_file_test (path, G_FILE_TEST_EXISTS))
      continue;
    m->weights_file = candidates[i];
    m->torch = i == 2;
    m->files = g_ptr_array_new_with_free_func (m->torch ? (GDestroyNotify) cria_torch_file_free
                                                        : (GDestroyNotify) cria_safetensors_free);
    gboolean ok = i == 0   ? add_safetensors (m, path, error)
                  : i == 1 ? add_sharded (m, path, error)
                           : add_torch (m, path, error);
    if (!ok)
      return NULL;
  }
  if (!m->weights_file) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND,
                 "%s: no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)", dir);
    return NULL;
  }
  return g_steal_pointer (&m);
}

const char *
cria_hf_model_get_dir (CriaHfModel *m)
{
  g_return_val_if_fail (m != NULL, NULL);
  return m->dir;
}

const CriaHfConfig *
cria_hf_model_get_config (CriaHfModel *m)
{
  g_return_val_if_fail (m != NULL, NULL);
  return m->config;
}

JsonObject *
cria_hf_model_get_generation_config (CriaHfModel *m)
{
  g_return_val_if_fail (m != NULL, NULL);
  return m->generation;
}

const char *
cria_hf_model_get_weights_file (CriaHfModel *m)
{
  g_return_val_if_fail (m != NULL, NULL);
  return m->weights_file;
}

guint
cria_hf_model_get_n_weights (CriaHfModel *m)
{
  g_return_val_if_fail (m != NULL, 0);
  return m->weights->len;
}

const CriaWeight *
cria_hf_model_get_weight (CriaHfModel *m, guint index)
{
  g_return_val_if_fail (m != NULL, NULL);
  g_return_val_if_fail (index < m->weights->len, NULL);
  return m->weights->pdata[index];
}

const CriaWeight *
cria_hf_model_lookup (CriaHfModel *m, const char *name)
{
  g_return_val_if_fail (m != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  return g_hash_table_lookup (m->by_name, name);
}

gint64
cria_hf_model_get_n_parameters (CriaHfModel *m)
{
  g_return_val_if_fail (m != NULL, 0);
  gint64 n = 0;
  for (guint i = 0; i < m->weights->len; i++)
    n += ((const CriaWeight *) m->weights->pdata[i])->n_elements;
  return n;
}

gboolean
cria_hf_model_rename (CriaHfModel *m, char *(*canonical) (const CriaHfConfig *config, const char *name), GError **error)
{
  g_return_val_if_fail (m && canonical, FALSE);
  g_autoptr (GHashTable) by_name = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GPtrArray) kept = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, m->by_name);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    char *name = canonical (m->config, key);
    if (!name)
      continue;
    if (g_hash_table_contains (by_name, name)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: tensors '%s' and '%s' are one weight under two names",
                   m->dir, (const char *) key, ((const CriaWeight *) g_hash_table_lookup (by_name, name))->name);
      g_free (name);
      mf_one_line (error);
      return FALSE;
    }
    g_hash_table_insert (by_name, name, value);
  }
  /* the file order stays */
  for (guint i = 0; i < m->weights->len; i++) {
    const CriaWeight *w = m->weights->pdata[i];
    g_autofree char *name = canonical (m->config, w->name);
    if (name)
      g_ptr_array_add (kept, (gpointer) w);
  }
  g_hash_table_unref (m->by_name);
  m->by_name = g_steal_pointer (&by_name);
  g_ptr_array_set_size (m->weights, 0);
  g_ptr_array_extend_and_steal (m->weights, g_steal_pointer (&kept));
  return TRUE;
}

CriaHfConfig *
cria_hf_model_get_config_mutable (CriaHfModel *m)
{
  return m->config;
}

static void
note (GString *s, guint *count, const char *what, const char *detail)
{
  if (++*count <= 3)
    g_string_append_printf (s, "%s%s %s", s->len ? "; " : "", what, detail);
}

gboolean
cria_hf_model_check (CriaHfModel *m, const GArray *specs, GError **error)
{
  g_return_val_if_fail (m && specs, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autoptr (GHashTable) expected = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GString) msg = g_string_new (NULL);
  guint missing = 0, unexpected = 0, misshaped = 0;
  for (guint i = 0; i < specs->len; i++) {
    CriaHfTensorSpec *s = &g_array_index (specs, CriaHfTensorSpec, i);
    g_hash_table_add (expected, s->name);
    const CriaWeight *w = g_hash_table_lookup (m->by_name, s->name);
    if (!w) {
      if (!s->optional)
        note (msg, &missing, "missing", s->name);
      continue;
    }
    gboolean same = w->n_dims == s->n_dims;
    for (guint d = 0; same && d < s->n_dims; d++)
      same = w->shape[d] == s->shape[d];
    if (!same) {
      CriaWeight want = { .n_dims = s->n_dims, .shape = { s->shape[0], s->shape[1] } };
      g_autofree char *have = cria_weight_shape_string (w);
      g_autofree char *need = cria_weight_shape_string (&want);
      g_autofree char *d = g_strdup_printf ("%s is %s, config.json implies %s", s->name, have, need);
      note (msg, &misshaped, "shape of", d);
    }
  }
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, m->by_name);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (!g_hash_table_contains (expected, key))
      note (msg, &unexpected, "unexpected", key);
  guint total = missing + unexpected + misshaped;
  if (!total)
    return TRUE;
  guint shown = MIN (missing, 3) + MIN (unexpected, 3) + MIN (misshaped, 3);
  g_autofree char *more = total > shown ? g_strdup_printf (" (%u problems in all)", total) : g_strdup ("");
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: the weights do not match config.json (%s): %s%s", m->dir,
               m->config->architecture, msg->str, more);
  mf_one_line (error);
  return FALSE;
}
