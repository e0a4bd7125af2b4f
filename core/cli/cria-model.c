/* cria-model.c: `cria model info DIR`, which opens a Hugging Face model
 * directory, checks its tensors against its config and describes it.
 *
 *   cria model info --tensors tests/models/tiny-qwen2
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cria-cli.h"

static gboolean as_json;
static gboolean list_tensors;

static const GOptionEntry entries[] = {
  { "json", 0, 0, G_OPTION_ARG_NONE, &as_json, "Print the description as JSON on stdout", NULL },
  { "tensors", 't', 0, G_OPTION_ARG_NONE, &list_tensors, "List every tensor with its dtype and shape", NULL },
  { NULL }
};

static const char *const rope_types[] = { "none", "linear", "dynamic", "llama3", "yarn" };

static JsonNode *
describe (CriaHfModel *m, const CriaProvider *provider)
{
  const CriaHfConfig *c = cria_hf_model_get_config (m);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
#define STR(k, v) (json_builder_set_member_name (b, k), json_builder_add_string_value (b, v))
#define INT(k, v) (json_builder_set_member_name (b, k), json_builder_add_int_value (b, v))
#define DBL(k, v) (json_builder_set_member_name (b, k), json_builder_add_double_value (b, v))
#define BOOL(k, v) (json_builder_set_member_name (b, k), json_builder_add_boolean_value (b, v))
  STR ("directory", cria_hf_model_get_dir (m));
  STR ("architecture", c->architecture);
  STR ("provider", cria_provider_get_name (provider));
  STR ("weights", cria_hf_model_get_weights_file (m));
  INT ("parameters", cria_hf_model_get_n_parameters (m));
  STR ("torch_dtype", cria_dtype_name (c->torch_dtype));
  INT ("hidden_size", c->hidden_size);
  INT ("layers", c->n_layers);
  INT ("heads", c->n_heads);
  INT ("kv_heads", c->n_kv_heads);
  INT ("head_dim", c->head_dim);
  INT ("intermediate_size", c->intermediate_size);
  INT ("vocab_size", c->vocab_size);
  INT ("max_positions", c->max_positions);
  DBL ("norm_eps", c->norm_eps);
  STR ("activation", c->hidden_act);
  if (c->rope_theta > 0) { /* rotary positions */
    DBL ("rope_theta", c->rope_theta);
    STR ("rope_scaling", rope_types[c->rope_scaling.type]);
    if (c->rope_scaling.type != CRIA_ROPE_SCALING_NONE)
      DBL ("rope_scaling_factor", c->rope_scaling.factor);
  }
  BOOL ("attention_bias", c->attention_bias);
  if (c->sliding_window)
    INT ("sliding_window", c->sliding_window);
  BOOL ("tie_word_embeddings", c->tie_word_embeddings);
  /* Bytes per dtype, as stored. */
  gsize bytes[CRIA_N_DTYPES] = { 0 };
  for (guint i = 0; i < cria_hf_model_get_n_weights (m); i++) {
    const CriaWeight *w = cria_hf_model_get_weight (m, i);
    bytes[w->dtype] += w->n_bytes;
  }
  json_builder_set_member_name (b, "bytes");
  json_builder_begin_object (b);
  for (guint d = 0; d < CRIA_N_DTYPES; d++)
    if (bytes[d])
      INT (cria_dtype_name ((CriaDType) d), (gint64) bytes[d]);
  json_builder_end_object (b);
  if (list_tensors) {
    json_builder_set_member_name (b, "tensors");
    json_builder_begin_array (b);
    for (guint i = 0; i < cria_hf_model_get_n_weights (m); i++) {
      const CriaWeight *w = cria_hf_model_get_weight (m, i);
      json_builder_begin_object (b);
      STR ("name", w->name);
      STR ("dtype", cria_dtype_name (w->dtype));
      json_builder_set_member_name (b, "shape");
      json_builder_begin_array (b);
      for (guint d = 0; d < w->n_dims; d++)
        json_builder_add_int_value (b, w->shape[d]);
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
  }
#undef STR
#undef INT
#undef DBL
#undef BOOL
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static void
print_text (JsonNode *node)
{
  JsonObject *o = json_node_get_object (node);
  g_autoptr (GList) keys = json_object_get_members (o); /* in insertion order */
  for (GList *k = keys; k; k = k->next) {
    const char *key = k->data;
    JsonNode *v = json_object_get_member (o, key);
    if (JSON_NODE_HOLDS_VALUE (v)) {
      GType t = json_node_get_value_type (v);
      if (t == G_TYPE_STRING)
        printf ("%-20s %s\n", key, json_node_get_string (v));
      else if (t == G_TYPE_DOUBLE)
        printf ("%-20s %g\n", key, json_node_get_double (v));
      else if (t == G_TYPE_BOOLEAN)
        printf ("%-20s %s\n", key, json_node_get_boolean (v) ? "yes" : "no");
      else
        printf ("%-20s %" G_GINT64_FORMAT "\n", key, json_node_get_int (v));
    } else if (strcmp (key, "bytes") == 0) {
      JsonObject *bo = json_node_get_object (v);
      g_autoptr (GList) dts = json_object_get_members (bo);
      for (GList *d = dts; d; d = d->next)
        printf ("%-20s %" G_GINT64_FORMAT " bytes of %s\n", "storage", json_object_get_int_member (bo, d->data),
                (const char *) d->data);
    } else if (strcmp (key, "tensors") == 0) {
      JsonArray *a = json_node_get_array (v);
      for (guint i = 0; i < json_array_get_length (a); i++) {
        JsonObject *t = json_array_get_object_element (a, i);
        g_autofree char *shape = json_to_string (json_object_get_member (t, "shape"), FALSE);
        printf ("  %-48s %-5s %s\n", json_object_get_string_member (t, "name"),
                json_object_get_string_member (t, "dtype"), shape);
      }
    }
  }
}

static gint64 init_seed;
static char *init_dtype;

static const GOptionEntry init_entries[] = {
  { "seed", 0, 0, G_OPTION_ARG_INT64, &init_seed, "model init: seed of the initial weights (default 0)", "N" },
  { "dtype", 0, 0, G_OPTION_ARG_STRING, &init_dtype, "model init: f32 (default) or bf16", "DTYPE" },
  { NULL }
};

/* cria model init CONFIG.json DIR: a new model to pretrain. */
static int
model_init (const char *config_path, const char *dir)
{
  g_autoptr (GError) error = NULL;
  CriaDType dtype = CRIA_DTYPE_F32;
  if (init_dtype &&
      (!cria_dtype_from_name (init_dtype, &dtype) || (dtype != CRIA_DTYPE_F32 && dtype != CRIA_DTYPE_BF16))) {
    g_printerr ("cria model: --dtype %s: expected f32 or bf16\n", init_dtype);
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (CriaRegistry) registry = cria_cli_load_registry ();
  if (!cria_model_init_dir (registry, config_path, dir, (guint64) init_seed, dtype, &error)) {
    cria_cli_error ("model", error);
    return CRIA_EXIT_FAILURE;
  }
  return CRIA_EXIT_OK;
}

int
cria_verb_model (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("info DIR | init CONFIG.json DIR");
  g_option_context_set_summary (ctx,
                                "Opens a Hugging Face model directory, checks its tensors against config.json\n"
                                "and describes it; or writes a new model with initial weights. See cria-model(1).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_main_entries (ctx, init_entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  if (argc == 4 && strcmp (argv[1], "init") == 0)
    return model_init (argv[2], argv[3]);
  if (argc != 3 || strcmp (argv[1], "info") != 0) {
    g_printerr ("cria model: usage: cria model info [--json] [--tensors] DIR\n"
                "       cria model init [--seed N] [--dtype f32|bf16] CONFIG.json DIR\n");
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (CriaRegistry) registry = cria_cli_load_registry ();
  const CriaProvider *provider = NULL;
  g_autofree char *dir = g_strdup (argv[2]);
  g_autoptr (CriaHfModel)
      m = cria_cli_resolve_model (&dir, &error) ? cria_model_open_files (registry, dir, &provider, NULL, &error) : NULL;
  if (!m) {
    cria_cli_error ("model", error);
    return CRIA_EXIT_FAILURE;
  }
  g_autoptr (JsonNode) node = describe (m, provider);
  if (as_json)
    cria_cli_print_json (node);
  else
    print_text (node);
  return CRIA_EXIT_OK;
}
