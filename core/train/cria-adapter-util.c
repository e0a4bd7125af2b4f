/* cria-adapter-util.c: what adapters saved in PEFT's format share — the
 * default targets, the seeded normal init, target_modules and the number
 * fields of adapter_config.json, checked tensor loading, and folding a
 * low-rank update into a weight.
 *
 *   cria train --model gpt2-dir --data train.jsonl --adapter 'adalora init-r=12 target-r=4'
 *   (lora and adalora both resolve target-modules=auto to what the model provider marks) */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cria/cria-adapter.h>
#include <cria/cria-error.h>

#include "cria-train-private.h"

char *
cria_adapter_resolve_targets (const char *targets, const CriaAdapterEntry *entries, guint n_entries)
{
  g_return_val_if_fail (targets && (entries || !n_entries), NULL);
  if (strcmp (targets, "auto") != 0)
    return g_strdup (targets);
  /* the last component of each marked module, once, in table order */
  g_autoptr (GString) names = g_string_new (NULL);
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < n_entries; i++) {
    if (!entries[i].default_target || !g_str_has_suffix (entries[i].name, ".weight"))
      continue;
    g_autofree char *module = g_strndup (entries[i].name, strlen (entries[i].name) - strlen (".weight"));
    const char *dot = strrchr (module, '.');
    const char *last = dot ? dot + 1 : module;
    if (g_hash_table_add (seen, g_strdup (last)))
      g_string_append_printf (names, "%s%s", names->len ? "," : "", last);
  }
  return names->len ? g_string_free (g_steal_pointer (&names), FALSE) : g_strdup ("all-linear");
}

float
cria_adapter_gaussian (GRand *rand)
{
  g_return_val_if_fail (rand != NULL, 0.0f);
  double u1 = g_rand_double (rand), u2 = g_rand_double (rand);
  if (u1 < 1e-300)
    u1 = 1e-300;
  return (float) (sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2));
}

void
cria_adapter_config_set_targets (JsonObject *config, const char *targets, GRegex *regex)
{
  g_return_if_fail (config != NULL);
  g_return_if_fail (targets != NULL);
  if (regex || strcmp (targets, "all-linear") == 0) {
    json_object_set_string_member (config, "target_modules", targets);
    return;
  }
  JsonArray *names = json_array_new ();
  g_auto (GStrv) parts = g_strsplit (targets, ",", -1);
  for (guint i = 0; parts[i]; i++)
    if (*g_strstrip (parts[i]))
      json_array_add_string_element (names, parts[i]);
  json_object_set_array_member (config, "target_modules", names);
}

gboolean
cria_adapter_config_get_targets (JsonObject *config, const char *file, char **targets, GRegex **regex, GError **error)
{
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (targets != NULL, FALSE);
  g_return_val_if_fail (regex != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  JsonNode *n = json_object_get_member (config, "target_modules");
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  g_autofree char *joined = NULL;
  g_autoptr (GRegex) re = NULL;
  if (JSON_NODE_HOLDS_ARRAY (n)) {
    JsonArray *a = json_node_get_array (n);
    g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
    for (guint i = 0; i < json_array_get_length (a); i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (json_node_get_value_type (e) != G_TYPE_STRING) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field target_modules[%u]: not a string", file, i);
        return FALSE;
      }
      g_strv_builder_add (b, json_node_get_string (e));
    }
    g_auto (GStrv) names = g_strv_builder_end (b);
    joined = g_strjoinv (",", names);
  } else if (json_node_get_value_type (n) == G_TYPE_STRING) {
    joined = g_strdup (json_node_get_string (n));
    GError *re_error = NULL;
    re = cria_adapter_target_regex (joined, &re_error);
    if (re_error) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field target_modules: %s", file, re_error->message);
      g_error_free (re_error);
      return FALSE;
    }
  } else {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field target_modules: not a list or a string", file);
    return FALSE;
  }
  g_free (*targets);
  *targets = g_steal_pointer (&joined);
  if (*regex)
    g_regex_unref (*regex);
  *regex = g_steal_pointer (&re);
  return TRUE;
}

gboolean
cria_adapter_config_get_double (JsonObject *config, const char *field, const char *file, double *value, GError **error)
{
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (field != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  JsonNode *n = json_object_get_member (config, field);
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  GType t = json_node_get_value_type (n);
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field %s: not a number", file, field);
    return FALSE;
  }
  *value = json_node_get_double (n);
  return TRUE;
}

gboolean
cria_adapter_config_get_int (JsonObject *config, const char *field, const char *file, gint64 lo, gint64 hi,
                             gint64 *value, GError **error)
{
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (field != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  double v = (double) *value;
  if (!cria_adapter_config_get_double (config, field, file, &v, error))
    return FALSE;
  if (v < (double) lo || v > (double) hi || v != floor (v)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE,
                 "%s: field %s: %g is not an integer in [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", file, field, v,
                 lo, hi);
    return FALSE;
  }
  *value = (gint64) v;
  return TRUE;
}

gboolean
cria_adapter_copy_in (CriaSafetensors *st, const char *key, CriaTensor *dst, guint n_dims, const gint64 *shape,
                      GError **error)
{
  g_return_val_if_fail (st != NULL, FALSE);
  g_return_val_if_fail (key != NULL, FALSE);
  g_return_val_if_fail (dst != NULL, FALSE);
  g_return_val_if_fail (shape != NULL || n_dims == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  const CriaWeight *w = cria_safetensors_lookup (st, key);
  if (!w) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "tensor %s is missing", key);
    return FALSE;
  }
  gboolean shape_ok = w->n_dims == n_dims;
  for (guint d = 0; shape_ok && d < n_dims; d++)
    shape_ok = w->shape[d] == shape[d];
  if (!shape_ok) {
    g_autofree char *have = cria_weight_shape_string (w);
    g_autofree char *want = cria_shape_to_string ((int) n_dims, shape);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "tensor %s is %s, the model needs %s", key, have,
                 want);
    return FALSE;
  }
  if (w->dtype != CRIA_DTYPE_F32 && w->dtype != CRIA_DTYPE_BF16 && w->dtype != CRIA_DTYPE_F16) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "tensor %s is not f32, bf16 or f16", key);
    return FALSE;
  }
  g_return_val_if_fail (w->n_elements == cria_tensor_numel (dst), FALSE);
  cria_convert_to_f32 (w->dtype, w->data, dst->data, (gsize) w->n_elements);
  return TRUE;
}

void
cria_adapter_add_weight (GArray *weights, const char *key, const float *data, guint n_dims, const gint64 *shape)
{
  g_return_if_fail (weights != NULL);
  g_return_if_fail (shape != NULL || n_dims == 0);
  CriaWeight w = { .name = key, .dtype = CRIA_DTYPE_F32, .n_dims = n_dims, .n_elements = 1, .data = data };
  for (guint d = 0; d < n_dims; d++) {
    w.shape[d] = shape[d];
    w.n_elements *= shape[d];
  }
  w.n_bytes = (gsize) w.n_elements * sizeof (float);
  g_array_append_val (weights, w);
}

CriaAdapterEntry *
cria_adapter_find_entry (CriaAdapterEntry *entries, guint n_entries, const char *name)
{
  g_return_val_if_fail (entries != NULL || n_entries == 0, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  for (guint i = 0; i < n_entries; i++)
    if (strcmp (entries[i].name, name) == 0)
      return &entries[i];
  return NULL;
}

void
cria_adapter_add_low_rank (float *w, gint64 out, gint64 in, gint64 r, const float *b, const float *e, const float *a,
                           double scale)
{
  g_return_if_fail (w != NULL);
  g_return_if_fail (b != NULL);
  g_return_if_fail (a != NULL);
  for (gint64 o = 0; o < out; o++)
    for (gint64 k = 0; k < in; k++) {
      double acc = 0;
      for (gint64 j = 0; j < r; j++)
        acc += (double) b[o * r + j] * (e ? e[j] : 1.0f) * a[j * in + k];
      w[o * in + k] += (float) (scale * acc);
    }
}

GHashTable *
cria_adapter_peft_saved_modules (CriaSafetensors *st, GError **error)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  GHashTable *saved = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autofree char *dir = g_path_get_dirname (cria_safetensors_get_path (st));
  g_autofree char *path = g_build_filename (dir, "adapter_config.json", NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return saved;
  g_autoptr (JsonObject) config = train_load_json_object (path, error);
  if (!config) {
    g_hash_table_unref (saved);
    return NULL;
  }
  if (!cria_json_member_is (config, "modules_to_save", JSON_TYPE_ARRAY)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field modules_to_save: expected a list of names", path);
    g_hash_table_unref (saved);
    return NULL;
  }
  JsonArray *modules = cria_json_get_array (config, "modules_to_save");
  g_autoptr (GString) names = g_string_new (NULL);
  for (guint i = 0; modules && i < json_array_get_length (modules); i++) {
    JsonNode *n = json_array_get_element (modules, i);
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: field modules_to_save[%u]: expected a string", path, i);
      g_hash_table_unref (saved);
      return NULL;
    }
    g_string_append_printf (names, "%s%s", names->len ? "," : "", json_node_get_string (n));
  }
  if (!names->len)
    return saved;
  for (guint i = 0; i < cria_safetensors_get_n_weights (st); i++) {
    const char *name = cria_safetensors_get_weight (st, i)->name;
    if (!g_str_has_prefix (name, CRIA_ADAPTER_PEFT_PREFIX) || strstr (name, "lora_"))
      continue;
    g_auto (GStrv) parts = g_strsplit (name + strlen (CRIA_ADAPTER_PEFT_PREFIX), ".", -1);
    guint n = g_strv_length (parts);
    g_autoptr (GString) base = g_string_new (NULL), module = g_string_new (NULL);
    for (guint k = 0; k < n; k++) {
      /* X.modules_to_save.ADAPTER.weight, as the live PEFT model names it */
      if (!strcmp (parts[k], "modules_to_save")) {
        k += k + 2 < n;
        continue;
      }
      g_string_append_printf (base, "%s%s", base->len ? "." : "", parts[k]);
      if (k + 1 < n)
        g_string_append_printf (module, "%s%s", module->len ? "." : "", parts[k]);
    }
    if (module->len && cria_adapter_target_matches (names->str, NULL, module->str))
      g_hash_table_insert (saved, g_strdup (name), g_string_free (g_steal_pointer (&base), FALSE));
  }
  return saved;
}
