/* cria-hfwrite.c: writing a model directory in the Hugging Face layout:
 * config.json and model.safetensors, or shards and their index above a size. */
#include "config.h"

#include <errno.h>

#include <glib/gstdio.h>

#include <cria/cria-error.h>
#include <cria/cria-hfmodel.h>
#include <cria/cria-output.h>

static gboolean
write_json (const char *dir, const char *name, JsonNode *root, GError **error)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_indent (gen, 2);
  json_generator_set_root (gen, root);
  gsize len;
  g_autofree char *text = json_generator_to_data (gen, &len);
  g_autoptr (CriaOutput) out = cria_output_open (path, error);
  if (!out || !cria_output_write (out, text, len, error) || !cria_output_write (out, "\n", 1, error))
    return FALSE;
  return cria_output_commit (g_steal_pointer (&out), error);
}

static CriaSafetensorsWriter *
new_shard (void)
{
  CriaSafetensorsWriter *w = cria_safetensors_writer_new ();
  /* transformers refuses safetensors files without format=pt. */
  cria_safetensors_writer_set_metadata (w, "format", "pt");
  return w;
}

gboolean
cria_hf_model_write (const char *dir, const CriaHfConfig *config, const CriaWeight *weights, guint n_weights,
                     guint64 max_shard_bytes, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (weights != NULL || n_weights == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot create the directory: %s", dir, g_strerror (errno));
    return FALSE;
  }
  /* Shards are cut greedily in the order given, so a layer stays together. */
  g_autoptr (GPtrArray) shards = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_safetensors_writer_free);
  g_autoptr (GArray) shard_of = g_array_sized_new (FALSE, FALSE, sizeof (guint), n_weights);
  guint64 used = 0, total = 0;
  for (guint i = 0; i < n_weights; i++) {
    if (!shards->len || (max_shard_bytes && used && used + weights[i].n_bytes > max_shard_bytes)) {
      g_ptr_array_add (shards, new_shard ());
      used = 0;
    }
    if (!cria_safetensors_writer_add (shards->pdata[shards->len - 1], &weights[i], error))
      return FALSE;
    used += weights[i].n_bytes;
    total += weights[i].n_bytes;
    guint s = shards->len - 1;
    g_array_append_val (shard_of, s);
  }
  if (!shards->len)
    g_ptr_array_add (shards, new_shard ());
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (guint s = 0; s < shards->len; s++) {
    char *name = shards->len == 1 ? g_strdup ("model.safetensors")
                                  : g_strdup_printf ("model-%05u-of-%05u.safetensors", s + 1, shards->len);
    g_ptr_array_add (names, name);
    g_autofree char *path = g_build_filename (dir, name, NULL);
    if (!cria_safetensors_writer_write (shards->pdata[s], path, error))
      return FALSE;
  }
  if (shards->len > 1) {
    g_autoptr (JsonBuilder) b = json_builder_new ();
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "metadata");
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "total_size");
    json_builder_add_int_value (b, (gint64) total);
    json_builder_end_object (b);
    json_builder_set_member_name (b, "weight_map");
    json_builder_begin_object (b);
    for (guint i = 0; i < n_weights; i++) {
      json_builder_set_member_name (b, weights[i].name);
      json_builder_add_string_value (b, names->pdata[g_array_index (shard_of, guint, i)]);
    }
    json_builder_end_object (b);
    json_builder_end_object (b);
    g_autoptr (JsonNode) index = json_builder_get_root (b);
    if (!write_json (dir, "model.safetensors.index.json", index, error))
      return FALSE;
  }
  /* A reader takes model.safetensors before an index: the layout not
   * written now must not linger beside the new one. */
  g_autofree char *stale = g_build_filename (
      dir, shards->len > 1 ? "model.safetensors" : "model.safetensors.index.json", NULL);
  if (g_unlink (stale) != 0 && errno != ENOENT) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "%s: cannot remove it: %s", stale, g_strerror (errno));
    return FALSE;
  }
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (root, config->json);
  return write_json (dir, "config.json", root, error);
}
