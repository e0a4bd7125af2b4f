/* full: full fine-tuning — every weight of the model trains, as an f32 copy.
 *
 *   cria train --model tiny-gpt2 --data corpus.jsonl --adapter full --out tiny-pretrained
 *
 * The copies replace the model's table entries, so the graph the model builds
 * differentiates them directly and the result is saved as a whole Hugging
 * Face checkpoint (cria_model_save), not as a PEFT adapter. Vectors (norms,
 * biases) are exempt from weight decay, as is usual. */
#include "config.h"

#include <string.h>

#include <cria/cria.h>
#include <cria/cria-adapter.h>

static const CriaPropSpec full_props[] = {
  { "freeze", CRIA_PROP_STRING, NULL, 0, 0, NULL,
    "regex over weight names kept frozen (e.g. wte|wpe); unset: every weight trains" },
  CRIA_PROP_END
};

typedef struct {
  char *name;
  CriaTensor *value;
} FullParam;

typedef struct {
  GRegex *freeze;
  GPtrArray *params; /* FullParam* */
} Full;

static void
param_free (FullParam *p)
{
  g_free (p->name);
  cria_tensor_unref (p->value);
  g_free (p);
}

static gpointer
full_create (const CriaProps *props, GError **error)
{
  const char *freeze = cria_props_get_string (props, "freeze");
  GRegex *re = NULL;
  if (freeze) {
    g_autofree char *anchored = g_strdup_printf ("^(?:%s)$", freeze);
    re = g_regex_new (anchored, 0, 0, error);
    if (!re) {
      g_prefix_error (error, "full: freeze: ");
      return NULL;
    }
  }
  Full *f = g_new0 (Full, 1);
  f->freeze = re;
  f->params = g_ptr_array_new_with_free_func ((GDestroyNotify) param_free);
  return f;
}

static void
full_destroy (gpointer self)
{
  Full *f = self;
  g_ptr_array_unref (f->params);
  g_clear_pointer (&f->freeze, g_regex_unref);
  g_free (f);
}

static gboolean
full_attach (gpointer self, CriaAdapterEntry *entries, guint n_entries, JsonObject *config, guint64 seed,
             GError **error)
{
  (void) config;
  (void) seed;
  Full *f = self;
  for (guint i = 0; i < n_entries; i++) {
    CriaAdapterEntry *e = &entries[i];
    if (f->freeze && g_regex_match (f->freeze, e->name, 0, NULL))
      continue;
    if (e->tensor->dtype != CRIA_DTYPE_F32 && e->tensor->dtype != CRIA_DTYPE_BF16 &&
        e->tensor->dtype != CRIA_DTYPE_F16) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_UNSUPPORTED, "full: %s is %s; only float weights can train", e->name,
                   cria_dtype_name (e->tensor->dtype));
      return FALSE;
    }
    FullParam *p = g_new0 (FullParam, 1);
    p->name = g_strdup (e->name);
    p->value = cria_tensor_to_f32 (e->tensor);
    e->replacement = p->value;
    e->replacement_trainable = TRUE;
    g_ptr_array_add (f->params, p);
  }
  if (f->params->len == 0) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "full: freeze leaves no weight to train");
    return FALSE;
  }
  return TRUE;
}

static void
full_list_params (gpointer self, GArray *params)
{
  Full *f = self;
  for (guint i = 0; i < f->params->len; i++) {
    FullParam *fp = g_ptr_array_index (f->params, i);
    CriaAdapterParam p = { fp->name, fp->value, fp->value->n_dims >= 2 };
    g_array_append_val (params, p);
  }
}

/* The trained copies are the model: merging writes them over the entries. */
static gboolean
full_merge (gpointer self, CriaAdapterEntry *entries, guint n_entries, GError **error)
{
  Full *f = self;
  for (guint i = 0; i < f->params->len; i++) {
    FullParam *fp = g_ptr_array_index (f->params, i);
    guint j;
    for (j = 0; j < n_entries && strcmp (entries[j].name, fp->name) != 0; j++)
      ;
    if (j == n_entries || entries[j].tensor->dtype != CRIA_DTYPE_F32 ||
        cria_tensor_numel (entries[j].tensor) != cria_tensor_numel (fp->value)) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "full: merge needs an f32 %s", fp->name);
      return FALSE;
    }
    if (entries[j].tensor != fp->value)
      memcpy (entries[j].tensor->data, fp->value->data, cria_tensor_nbytes (fp->value));
  }
  return TRUE;
}

static const CriaAdapterVTable full_vtable = {
  CRIA_VTABLE_INIT (CriaAdapterVTable),
  .peft_type = NULL,
  .create = full_create,
  .destroy = full_destroy,
  .attach = full_attach,
  .list_params = full_list_params,
  .merge = full_merge,
};

static const CriaProviderInfo full_info = {
  .name = "full",
  .description = "Full fine-tuning: every weight trains as an f32 copy; saved as a whole checkpoint",
  .example = "cria train --model tiny-gpt2 --data corpus.jsonl --adapter full --out tiny-pretrained",
  .props = full_props,
  .rank = CRIA_RANK_PRIMARY,
};

static gboolean
plugin_init (CriaPlugin *plugin, GError **error)
{
  (void) error;
  cria_plugin_add_adapter (plugin, &full_info, &full_vtable);
  return TRUE;
}

CRIA_PLUGIN_DEFINE (full, "Full fine-tuning", plugin_init, PACKAGE_VERSION, "LGPL-2.1-or-later", "cria");
