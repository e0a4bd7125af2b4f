/* cria-model.c: a model loaded from a Hugging Face directory — choosing the
 * provider of its class, the parameter table the providers build from, and
 * writing it back.
 *
 * Matrices are kept as the file stores them and mapped rather than copied
 * when the dtype already suits; weights a provider says are stored [in, out]
 * are transposed into [out, in] once here so that every provider and
 * adapter sees one layout. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cria/cria-error.h>
#include <cria/cria-input.h>
#include <cria/cria-model.h>
#include <cria/cria-plugin.h>

typedef struct {
  CriaTensor *tensor;
  gboolean trainable;
} Param;

/* The directory's mapping lives as long as any tensor borrowed from it. */
typedef struct {
  CriaHfModel *files;
} FilesBox;

struct _CriaModel {
  const CriaProvider *provider;
  const CriaModelVTable *vtable;
  FilesBox *box;
  GArray *specs;       /* CriaHfTensorSpec, the provider's list */
  GHashTable *by_spec; /* name -> CriaHfTensorSpec* in specs */
  GPtrArray *names;    /* char*, the table's order */
  GHashTable *params;  /* name -> Param* */
  char *tokenizer_dir; /* an adapter's, or NULL: the model's own */
};

static void
files_box_clear (gpointer data)
{
  FilesBox *box = data;
  cria_hf_model_free (box->files);
}

static void
files_box_release (gpointer data)
{
  g_rc_box_release_full (data, files_box_clear);
}

static void
param_free (gpointer data)
{
  Param *p = data;
  cria_tensor_unref (p->tensor);
  g_free (p);
}

void
cria_model_drop_weight_pages (CriaTensor *weight)
{
  if (!weight || weight->release != files_box_release)
    return;
  /* torch files are read into owned memory, where MADV_DONTNEED would zero
   * bytes that another tensor may share; safetensors are private read-only
   * mappings, refilled from the file */
  const char *file = cria_hf_model_get_weights_file (((FilesBox *) weight->release_data)->files);
  if (!g_str_has_suffix (file, ".safetensors") && !g_str_has_suffix (file, ".safetensors.index.json"))
    return;
  guintptr page = (guintptr) sysconf (_SC_PAGESIZE);
  guintptr from = ((guintptr) weight->data + page - 1) / page * page;
  guintptr to = ((guintptr) weight->data + cria_tensor_nbytes (weight)) / page * page;
  if (to > from)
    madvise ((void *) from, to - from, MADV_DONTNEED);
}

const CriaModelVTable *
cria_model_provider_vtable (const CriaProvider *p)
{
  g_return_val_if_fail (p, NULL);
  if (cria_provider_get_kind (p) != CRIA_KIND_MODEL)
    return NULL;
  const CriaModelVTable *vt = cria_provider_get_vtable (p);
  /* everything up to build is required */
  if (!vt || !CRIA_VTABLE_HAS (vt, build) || !vt->classes || !vt->configure || !vt->tensors)
    return NULL;
  return vt;
}

static gboolean
claims (const CriaModelVTable *vt, const char *architecture)
{
  for (const char *const *c = vt->classes; *c; c++)
    if (strcmp (*c, architecture) == 0)
      return TRUE;
  return FALSE;
}

const CriaProvider *
cria_model_find_provider (CriaRegistry *registry, const char *architecture, GError **error)
{
  g_return_val_if_fail (registry && architecture, NULL);
  /* highest rank first: of two providers of one class, the rank wins */
  g_autoptr (GPtrArray) all = cria_registry_list_kind (registry, CRIA_KIND_MODEL);
  const CriaProvider *best = NULL;
  g_autoptr (GString) known = g_string_new (NULL);
  for (guint i = 0; i < all->len; i++) {
    const CriaProvider *p = g_ptr_array_index (all, i);
    const CriaModelVTable *vt = cria_model_provider_vtable (p);
    if (!vt)
      continue;
    for (const char *const *c = vt->classes; *c; c++)
      g_string_append_printf (known, "%s%s", known->len ? ", " : "", *c);
    if (!best && claims (vt, architecture))
      best = p;
  }
  if (!best)
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "no model plugin builds the architecture %s (%s%s)",
                 architecture, known->len ? "known: " : "no model plugins are loaded", known->str);
  return best;
}

const CriaProvider *
cria_model_configure (CriaRegistry *registry, CriaHfConfig *config, GError **error)
{
  g_return_val_if_fail (registry && config, NULL);
  const CriaProvider *p = cria_model_find_provider (registry, config->architecture, error);
  if (!p) {
    g_prefix_error (error, "%s: architectures: ", config->file);
    return NULL;
  }
  const CriaModelVTable *vt = cria_model_provider_vtable (p);
  if (!vt->configure (config, error) || !cria_hf_config_check (config, error))
    return NULL;
  return p;
}

CriaHfModel *
cria_model_open_files (CriaRegistry *registry, const char *dir, const CriaProvider **provider, GArray **tensors,
                       GError **error)
{
  g_return_val_if_fail (registry && dir, NULL);
  /* an architecture no plugin builds is said before the weights are read */
  g_autofree char *config_path = g_build_filename (dir, "config.json", NULL);
  if (g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_autoptr (CriaHfConfig) early = cria_hf_config_load (config_path, error);
    if (!early)
      return NULL;
    if (!cria_model_find_provider (registry, early->architecture, error)) {
      g_prefix_error (error, "%s: architectures: ", config_path);
      return NULL;
    }
  }
  g_autoptr (CriaHfModel) files = cria_hf_model_open (dir, error);
  if (!files)
    return NULL;
  CriaHfConfig *config = cria_hf_model_get_config_mutable (files);
  const CriaProvider *p = cria_model_configure (registry, config, error);
  if (!p)
    return NULL;
  const CriaModelVTable *vt = cria_model_provider_vtable (p);
  if (vt->canonical && !cria_hf_model_rename (files, vt->canonical, error))
    return NULL;
  g_autoptr (GArray) specs = vt->tensors (config);
  if (!cria_hf_model_check (files, specs, error))
    return NULL;
  if (provider)
    *provider = p;
  if (tensors)
    *tensors = g_steal_pointer (&specs);
  return g_steal_pointer (&files);
}

/* A weight in the dtype it is computed in: vectors in f32, matrices as
 * stored or as asked; the file's bytes are borrowed when nothing changes. */
static CriaTensor *
load_weight (CriaModel *model, const CriaWeight *w, gboolean transpose, CriaModelDType want, GError **error)
{
  gint64 shape[2] = { w->shape[0], w->n_dims == 2 ? w->shape[1] : 1 };
  if (w->dtype != CRIA_DTYPE_F32 && w->dtype != CRIA_DTYPE_BF16 && w->dtype != CRIA_DTYPE_F16) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "%s: weight %s is %s; models hold f32, bf16 or f16",
                 cria_hf_model_get_dir (model->box->files), w->name, cria_dtype_name (w->dtype));
    return NULL;
  }
  CriaDType dtype = w->dtype;
  if (w->n_dims == 1 || want == CRIA_MODEL_DTYPE_F32)
    dtype = CRIA_DTYPE_F32;
  else if (want == CRIA_MODEL_DTYPE_BF16)
    dtype = CRIA_DTYPE_BF16;
  gsize esize = cria_dtype_bytes (w->dtype, 1);
  if (!transpose && dtype == w->dtype && (guintptr) w->data % esize == 0)
    return cria_tensor_new_borrowed (dtype, (int) w->n_dims, shape, (void *) w->data, files_box_release,
                                     g_rc_box_acquire (model->box));
  g_autofree float *f = g_new (float, w->n_elements);
  cria_convert_to_f32 (w->dtype, w->data, f, (gsize) w->n_elements);
  if (transpose) {
    /* [in, out] on disk -> [out, in] */
    g_autofree float *t = g_new (float, w->n_elements);
    for (gint64 i = 0; i < shape[0]; i++)
      for (gint64 o = 0; o < shape[1]; o++)
        t[o * shape[0] + i] = f[i * shape[1] + o];
    g_free (f);
    f = g_steal_pointer (&t);
    gint64 in = shape[0];
    shape[0] = shape[1];
    shape[1] = in;
  }
  CriaTensor *tensor = cria_tensor_new (dtype, (int) w->n_dims, shape);
  cria_convert_from_f32 (dtype, f, tensor->data, (gsize) w->n_elements);
  return tensor;
}

static gboolean
is_transposed (CriaModel *model, const char *name)
{
  return model->vtable->transposed && model->vtable->transposed (cria_model_get_config (model), name);
}

CriaModel *
cria_model_open (CriaRegistry *registry, const char *dir, CriaModelDType dtype, GError **error)
{
  g_return_val_if_fail (registry && dir, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaProvider *provider = NULL;
  GArray *specs = NULL;
  CriaHfModel *files = cria_model_open_files (registry, dir, &provider, &specs, error);
  if (!files)
    return NULL;
  g_autoptr (CriaModel) model = g_new0 (CriaModel, 1);
  model->provider = provider;
  model->vtable = cria_model_provider_vtable (provider);
  model->specs = specs;
  model->by_spec = g_hash_table_new (g_str_hash, g_str_equal);
  model->box = g_rc_box_new0 (FilesBox);
  model->box->files = files;
  model->names = g_ptr_array_new_with_free_func (g_free);
  model->params = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, param_free);
  for (guint i = 0; i < specs->len; i++) {
    CriaHfTensorSpec *spec = &g_array_index (specs, CriaHfTensorSpec, i);
    g_hash_table_insert (model->by_spec, spec->name, spec);
    const CriaWeight *w = cria_hf_model_lookup (files, spec->name);
    if (!w)
      continue; /* an optional tensor (tied head); cria_hf_model_open checked the rest */
    Param *p = g_new0 (Param, 1);
    p->tensor = load_weight (model, w, is_transposed (model, spec->name), dtype, error);
    if (!p->tensor) {
      g_free (p);
      return NULL;
    }
    char *name = g_strdup (spec->name);
    g_ptr_array_add (model->names, name);
    g_hash_table_insert (model->params, name, p);
  }
  return g_steal_pointer (&model);
}

void
cria_model_free (CriaModel *model)
{
  if (!model)
    return;
  if (model->params)
    g_hash_table_unref (model->params);
  if (model->names)
    g_ptr_array_unref (model->names);
  if (model->by_spec)
    g_hash_table_unref (model->by_spec);
  if (model->specs)
    g_array_unref (model->specs);
  if (model->box)
    files_box_release (model->box);
  g_free (model->tokenizer_dir);
  g_free (model);
}

const CriaHfConfig *
cria_model_get_config (CriaModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return cria_hf_model_get_config (model->box->files);
}

CriaHfModel *
cria_model_get_files (CriaModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->box->files;
}

const CriaProvider *
cria_model_get_provider (CriaModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->provider;
}

const char *
cria_model_get_dir (CriaModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return cria_hf_model_get_dir (model->box->files);
}

const CriaHfTensorSpec *
cria_model_get_param_spec (CriaModel *model, const char *name)
{
  g_return_val_if_fail (model && name, NULL);
  return g_hash_table_lookup (model->by_spec, name);
}

const char *
cria_model_get_default_targets (CriaModel *model)
{
  g_return_val_if_fail (model, NULL);
  return CRIA_VTABLE_HAS (model->vtable, default_targets) ? model->vtable->default_targets : NULL;
}

guint
cria_model_get_n_params (CriaModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->names->len;
}

const char *
cria_model_get_param_name (CriaModel *model, guint index)
{
  g_return_val_if_fail (model != NULL, NULL);
  return index < model->names->len ? g_ptr_array_index (model->names, index) : NULL;
}

CriaTensor *
cria_model_get_param (CriaModel *model, const char *name)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  Param *p = g_hash_table_lookup (model->params, name);
  return p ? p->tensor : NULL;
}

gboolean
cria_model_param_is_trainable (CriaModel *model, const char *name)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  Param *p = g_hash_table_lookup (model->params, name);
  return p && p->trainable;
}

gboolean
cria_model_set_param (CriaModel *model, const char *name, CriaTensor *tensor, gboolean trainable, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (tensor != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  Param *p = g_hash_table_lookup (model->params, name);
  if (!p) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "the model has no weight %s", name);
    return FALSE;
  }
  gboolean same = tensor->n_dims == p->tensor->n_dims;
  for (int i = 0; same && i < tensor->n_dims; i++)
    same = tensor->shape[i] == p->tensor->shape[i];
  if (!same || (trainable && tensor->dtype != CRIA_DTYPE_F32)) {
    g_autofree char *want = cria_shape_to_string (p->tensor->n_dims, p->tensor->shape);
    g_autofree char *got = cria_shape_to_string (tensor->n_dims, tensor->shape);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "weight %s: %s %s given for %s%s", name,
                 cria_dtype_name (tensor->dtype), got, want, trainable ? " (trainable weights are f32)" : "");
    return FALSE;
  }
  cria_tensor_unref (p->tensor);
  p->tensor = cria_tensor_ref (tensor);
  p->trainable = trainable;
  return TRUE;
}

/* The shape a spec gives, as the table holds it ([out, in]). */
static gboolean
fits_spec (CriaModel *model, const CriaHfTensorSpec *spec, const CriaTensor *t)
{
  gboolean swap = spec->n_dims == 2 && is_transposed (model, spec->name);
  if ((guint) t->n_dims != spec->n_dims)
    return FALSE;
  for (guint d = 0; d < spec->n_dims; d++)
    if (t->shape[d] != spec->shape[swap ? 1 - d : d])
      return FALSE;
  return TRUE;
}

static char *
spec_shape_string (CriaModel *model, const CriaHfTensorSpec *spec)
{
  gboolean swap = spec->n_dims == 2 && is_transposed (model, spec->name);
  gint64 shape[2] = { spec->shape[swap ? 1 : 0], spec->shape[swap ? 0 : 1] };
  return cria_shape_to_string ((int) spec->n_dims, shape);
}

/* The new table against the provider's list of the changed config: every
 * weight in place with its new shape, before anything changes. */
static gboolean
check_reconfigured (CriaModel *model, GArray *specs, GHashTable *weights, const char *source, GError **error)
{
  g_autoptr (GHashTable) listed = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < specs->len; i++) {
    const CriaHfTensorSpec *spec = &g_array_index (specs, CriaHfTensorSpec, i);
    g_hash_table_add (listed, spec->name);
    CriaTensor *given = weights ? g_hash_table_lookup (weights, spec->name) : NULL;
    CriaTensor *held = cria_model_get_param (model, spec->name);
    CriaTensor *t = given ? given : held;
    if (!t && spec->optional)
      continue;
    g_autofree char *want = spec_shape_string (model, spec);
    if (!t) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "%s: the changed model needs %s %s, which neither the model nor %s holds", source, spec->name, want,
                   source);
      return FALSE;
    }
    if (!fits_spec (model, spec, t)) {
      g_autofree char *have = cria_shape_to_string (t->n_dims, t->shape);
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: %s is %s%s, the changed model needs %s", source,
                   spec->name, have, given ? "" : " in the model and not given", want);
      return FALSE;
    }
  }
  for (guint i = 0; i < model->names->len; i++) {
    const char *name = g_ptr_array_index (model->names, i);
    if (!g_hash_table_contains (listed, name)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: the changed model has no weight %s", source,
                   name);
      return FALSE;
    }
  }
  GHashTableIter it;
  gpointer key;
  if (weights)
    g_hash_table_iter_init (&it, weights);
  while (weights && g_hash_table_iter_next (&it, &key, NULL))
    if (!g_hash_table_contains (listed, key)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "%s: the model has no weight %s", source,
                   (const char *) key);
      return FALSE;
    }
  return TRUE;
}

gboolean
cria_model_reconfigure (CriaModel *model, JsonObject *changes, GHashTable *weights, const char *source, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (changes != NULL, FALSE);
  g_return_val_if_fail (source != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  CriaHfConfig *config = cria_hf_model_get_config_mutable (model->box->files);
  /* The changed config read as a loaded one is, beside the live one. */
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, config->json);
  g_autofree char *text = json_to_string (node, FALSE);
  g_autoptr (CriaHfConfig) probe = cria_hf_config_parse (text, -1, config->file, error);
  if (!probe)
    return FALSE;
  g_autoptr (GList) members = json_object_get_members (changes);
  for (GList *l = members; l; l = l->next)
    json_object_set_member (probe->json, l->data, json_node_copy (json_object_get_member (changes, l->data)));
  if (!model->vtable->configure (probe, error) || !cria_hf_config_check (probe, error)) {
    g_prefix_error (error, "%s: ", source);
    return FALSE;
  }
  g_autoptr (GArray) specs = model->vtable->tensors (probe);
  if (!check_reconfigured (model, specs, weights, source, error))
    return FALSE;

  /* The config keeps its address and its JSON object (both are borrowed
   * elsewhere); the typed fields are the changed config's. */
  JsonObject *json = config->json;
  CriaHfConfig old = *config;
  *config = *probe;
  *probe = old;
  probe->json = config->json;
  config->json = json;
  for (GList *l = members; l; l = l->next)
    json_object_set_member (json, l->data, json_node_copy (json_object_get_member (changes, l->data)));

  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  GHashTable *params = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, param_free);
  GHashTable *by_spec = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < specs->len; i++) {
    CriaHfTensorSpec *spec = &g_array_index (specs, CriaHfTensorSpec, i);
    g_hash_table_insert (by_spec, spec->name, spec);
    CriaTensor *given = weights ? g_hash_table_lookup (weights, spec->name) : NULL;
    Param *held = g_hash_table_lookup (model->params, spec->name);
    if (!given && !held)
      continue;
    Param *p = g_new0 (Param, 1);
    p->tensor = cria_tensor_ref (given ? given : held->tensor);
    p->trainable = !given && held->trainable;
    char *name = g_strdup (spec->name);
    g_ptr_array_add (names, name);
    g_hash_table_insert (params, name, p);
  }
  g_hash_table_unref (model->params);
  g_hash_table_unref (model->by_spec);
  g_ptr_array_unref (model->names);
  g_array_unref (model->specs);
  model->params = params;
  model->by_spec = by_spec;
  model->names = names;
  model->specs = g_steal_pointer (&specs);
  return TRUE;
}

const char *
cria_model_get_tokenizer_dir (CriaModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->tokenizer_dir ? model->tokenizer_dir : cria_model_get_dir (model);
}

void
cria_model_set_tokenizer_dir (CriaModel *model, const char *dir)
{
  g_return_if_fail (model != NULL);
  g_free (model->tokenizer_dir);
  model->tokenizer_dir = g_strdup (dir);
}

CriaNode *
cria_model_param (CriaModel *model, CriaGraph *g, const char *name)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  CriaNode *n = cria_graph_find (g, name);
  if (n && n->op == CRIA_OP_PARAM)
    return n;
  Param *p = g_hash_table_lookup (model->params, name);
  if (!p)
    return cria_graph_fail (g, "the model has no weight %s", name);
  return cria_graph_param (g, name, p->tensor, p->trainable);
}

gboolean
cria_model_build (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (shape != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  memset (out, 0, sizeof *out);
  if (shape->batch < 1 || shape->seq < 1 || shape->past < 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "a forward pass needs batch >= 1 and seq >= 1");
    return FALSE;
  }
  if (!model->vtable->build (model, g, shape, out, error))
    return FALSE;
  if (!cria_graph_check (g, error)) {
    g_prefix_error (error, "%s (%s): ", cria_model_get_dir (model), cria_provider_get_name (model->provider));
    return FALSE;
  }
  return TRUE;
}

gboolean
cria_model_add_inputs (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (g != NULL, FALSE);
  g_return_val_if_fail (shape != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  const CriaHfConfig *c = cria_model_get_config (model);
  gint64 bt[2] = { shape->batch, shape->seq };
  gint64 bk[2] = { shape->batch, shape->past + shape->seq };
  out->ids = cria_graph_input (g, "input_ids", CRIA_DTYPE_I32, 2, bt);
  out->positions = cria_graph_input (g, "position_ids", CRIA_DTYPE_I32, 2, bt);
  out->segments = shape->segments ? cria_graph_input (g, "segment_ids", CRIA_DTYPE_I32, 2, bk) : NULL;
  out->present_k = g_new0 (CriaNode *, c->n_layers);
  out->present_v = g_new0 (CriaNode *, c->n_layers);
  if (shape->pasts) {
    gint64 B = shape->batch;
    out->past_k = g_new0 (CriaNode *, c->n_layers * B);
    out->past_v = g_new0 (CriaNode *, c->n_layers * B);
    out->cached_k = g_new0 (CriaNode *, c->n_layers * B);
    out->cached_v = g_new0 (CriaNode *, c->n_layers * B);
    for (gint64 l = 0; l < c->n_layers; l++)
      for (gint64 b = 0; b < B; b++) {
        if (shape->pasts[b] == 0)
          continue;
        gint64 kv[4] = { 1, shape->pasts[b], c->n_kv_heads, c->head_dim };
        g_autofree char *kn = g_strdup_printf ("past.%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT ".k", l, b);
        g_autofree char *vn = g_strdup_printf ("past.%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT ".v", l, b);
        out->past_k[l * B + b] = cria_graph_input (g, kn, CRIA_DTYPE_F32, 4, kv);
        out->past_v[l * B + b] = cria_graph_input (g, vn, CRIA_DTYPE_F32, 4, kv);
      }
  } else if (shape->past > 0) {
    gint64 kv[4] = { shape->batch, shape->past, c->n_kv_heads, c->head_dim };
    out->past_k = g_new0 (CriaNode *, c->n_layers);
    out->past_v = g_new0 (CriaNode *, c->n_layers);
    out->cached_k = g_new0 (CriaNode *, c->n_layers);
    out->cached_v = g_new0 (CriaNode *, c->n_layers);
    for (gint64 l = 0; l < c->n_layers; l++) {
      g_autofree char *kn = g_strdup_printf ("past.%" G_GINT64_FORMAT ".k", l);
      g_autofree char *vn = g_strdup_printf ("past.%" G_GINT64_FORMAT ".v", l);
      out->past_k[l] = cria_graph_input (g, kn, CRIA_DTYPE_F32, 4, kv);
      out->past_v[l] = cria_graph_input (g, vn, CRIA_DTYPE_F32, 4, kv);
    }
  }
  return cria_graph_get_error (g) == NULL;
}

/* Concatenation of nodes[0..n) along dim 0, as a balanced tree (each row
 * copied log n times rather than n). */
static CriaNode *
concat_rows (CriaGraph *g, CriaNode **nodes, gint64 n)
{
  if (n == 1)
    return nodes[0];
  return cria_concat (g, concat_rows (g, nodes, n / 2), concat_rows (g, nodes + n / 2, n - n / 2), 0);
}

/* Each sequence of a ragged batch attends over its own cache: the very ops
 * (and shapes) of the sequence run alone, so it gets the same floats. */
static CriaNode *
ragged_attention (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out, gint64 layer,
                  CriaNode *q, CriaNode *k, CriaNode *v, float scale, gint64 window)
{
  const CriaHfConfig *c = cria_model_get_config (model);
  gint64 B = shape->batch;
  out->present_k[layer] = k;
  out->present_v[layer] = v;
  if (shape->kv_output && k && v) {
    cria_graph_mark_output (g, k);
    cria_graph_mark_output (g, v);
  }
  g_autofree CriaNode **rows = g_new0 (CriaNode *, B);
  for (gint64 b = 0; b < B; b++) {
    CriaNode *qb = B > 1 ? cria_slice (g, q, 0, b, 1) : q;
    CriaNode *kb = B > 1 ? cria_slice (g, k, 0, b, 1) : k;
    CriaNode *vb = B > 1 ? cria_slice (g, v, 0, b, 1) : v;
    if (shape->pasts[b] > 0) {
      kb = out->cached_k[layer * B + b] = cria_concat (g, out->past_k[layer * B + b], kb, 1);
      vb = out->cached_v[layer * B + b] = cria_concat (g, out->past_v[layer * B + b], vb, 1);
    }
    rows[b] = cria_attention_window (g, qb, kb, vb, NULL, scale, window);
  }
  gint64 flat[3] = { B, shape->seq, c->n_heads * c->head_dim };
  return cria_reshape (g, concat_rows (g, rows, B), 3, flat);
}

CriaNode *
cria_model_attention (CriaModel *model, CriaGraph *g, const CriaModelShape *shape, CriaModelGraph *out, gint64 layer,
                      CriaNode *q, CriaNode *k, CriaNode *v, float scale, gint64 window)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_return_val_if_fail (g != NULL, NULL);
  g_return_val_if_fail (shape != NULL, NULL);
  g_return_val_if_fail (out != NULL, NULL);
  const CriaHfConfig *c = cria_model_get_config (model);
  if (shape->pasts)
    return ragged_attention (model, g, shape, out, layer, q, k, v, scale, window);
  if (shape->past > 0) {
    k = out->cached_k[layer] = cria_concat (g, out->past_k[layer], k, 1);
    v = out->cached_v[layer] = cria_concat (g, out->past_v[layer], v, 1);
  }
  out->present_k[layer] = k;
  out->present_v[layer] = v;
  if (shape->kv_output && k && v) {
    cria_graph_mark_output (g, k);
    cria_graph_mark_output (g, v);
  }
  CriaNode *a = cria_attention_window (g, q, k, v, out->segments, scale, window);
  gint64 flat[3] = { shape->batch, shape->seq, c->n_heads * c->head_dim };
  return cria_reshape (g, a, 3, flat);
}

void
cria_model_graph_clear (CriaModelGraph *out)
{
  g_free (out->past_k);
  g_free (out->past_v);
  g_free (out->present_k);
  g_free (out->present_v);
  g_free (out->cached_k);
  g_free (out->cached_v);
  memset (out, 0, sizeof *out);
}

/* Copied beside the weights; the tokenizer's from wherever the tokenizer
 * came from (an adapter that added tokens), never mixed with the base's. */
static const char *const side_files[] = { "generation_config.json" };
static const char *const tokenizer_files[] = { "tokenizer.json",    "tokenizer_config.json", "special_tokens_map.json",
                                               "added_tokens.json", "chat_template.jinja",   "vocab.json",
                                               "merges.txt",        "tokenizer.model" };

static gboolean
copy_files (const char *from, const char *to, const char *const *files, guint n, GError **error)
{
  if (g_strcmp0 (from, to) == 0)
    return TRUE;
  for (guint i = 0; i < n; i++) {
    g_autofree char *src = g_build_filename (from, files[i], NULL);
    g_autofree char *dst = g_build_filename (to, files[i], NULL);
    g_autofree char *data = NULL;
    gsize len;
    if (!g_file_test (src, G_FILE_TEST_EXISTS))
      continue;
    if (!cria_file_get_contents (src, CRIA_INPUT_MAX_FILE_BYTES, &data, &len, error) ||
        !g_file_set_contents (dst, data, (gssize) len, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
cria_model_save (CriaModel *model, const char *dir, CriaDType dtype, guint64 max_shard_bytes, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (dtype != CRIA_DTYPE_F32 && dtype != CRIA_DTYPE_BF16 && dtype != CRIA_DTYPE_F16) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "models are written in f32, bf16 or f16, not %s",
                 cria_dtype_name (dtype));
    return FALSE;
  }
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "%s: cannot create the directory: %s", dir,
                 g_strerror (errno));
    return FALSE;
  }
  guint n = model->names->len;
  g_autofree CriaWeight *weights = g_new0 (CriaWeight, n);
  g_autoptr (GPtrArray) buffers = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n; i++) {
    const char *name = g_ptr_array_index (model->names, i);
    CriaTensor *t = cria_model_get_param (model, name);
    gint64 numel = cria_tensor_numel (t);
    g_autoptr (CriaTensor) f = cria_tensor_to_f32 (t);
    float *src = f->data;
    CriaWeight *w = &weights[i];
    w->name = name;
    w->dtype = dtype;
    w->n_dims = (guint) t->n_dims;
    for (int d = 0; d < t->n_dims; d++)
      w->shape[d] = t->shape[d];
    g_autofree float *tr = NULL;
    if (t->n_dims == 2 && is_transposed (model, name)) {
      tr = g_new (float, numel);
      for (gint64 o = 0; o < t->shape[0]; o++)
        for (gint64 in = 0; in < t->shape[1]; in++)
          tr[in * t->shape[0] + o] = src[o * t->shape[1] + in];
      src = tr;
      w->shape[0] = t->shape[1];
      w->shape[1] = t->shape[0];
    }
    w->n_elements = numel;
    w->n_bytes = cria_dtype_bytes (dtype, (gsize) numel);
    void *buf = g_malloc (MAX (w->n_bytes, 1));
    cria_convert_from_f32 (dtype, src, buf, (gsize) numel);
    g_ptr_array_add (buffers, buf);
    w->data = buf;
  }
  /* The config says which dtype the weights are in. */
  const CriaHfConfig *config = cria_model_get_config (model);
  CriaHfConfig copy = *config;
  copy.json = json_object_ref (config->json);
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, copy.json);
  g_autofree char *text = json_to_string (node, FALSE);
  json_object_unref (copy.json);
  g_autoptr (JsonNode) parsed = cria_json_parse (text, -1, "config.json", 1, error);
  if (!parsed)
    return FALSE;
  copy.json = json_node_get_object (parsed);
  const char *torch_name = dtype == CRIA_DTYPE_F32 ? "float32" : dtype == CRIA_DTYPE_BF16 ? "bfloat16" : "float16";
  json_object_set_string_member (copy.json, "torch_dtype", torch_name);
  if (!cria_hf_model_write (dir, &copy, weights, n, max_shard_bytes, error))
    return FALSE;
  return copy_files (cria_model_get_dir (model), dir, side_files, G_N_ELEMENTS (side_files), error) &&
         copy_files (cria_model_get_tokenizer_dir (model), dir, tokenizer_files, G_N_ELEMENTS (tokenizer_files), error);
}
