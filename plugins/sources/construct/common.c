/* common.c: the generator, prompt files and requests of the construction stages. */
#include "config.h"

#include <string.h>

#include "construct.h"

gboolean
construct_init (Construct *c, const CriaProps *props, CriaContext *ctx, GError **error)
{
  memset (c, 0, sizeof *c);
  c->ctx = ctx;
  c->prompts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  c->prompts_dir = g_strdup (cria_props_get_string (props, "prompts"));
  c->temperature = cria_props_get_double (props, "temperature");
  c->top_p = cria_props_get_double (props, "top-p");
  c->max_tokens = (int) cria_props_get_int (props, "max-tokens");
  c->seed = cria_props_is_set (props, "seed") ? (guint64) cria_props_get_int (props, "seed")
                                              : cria_context_get_seed (ctx);
  if (c->prompts_dir && !g_file_test (c->prompts_dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_NOT_FOUND, "prompts: %s is not a directory", c->prompts_dir);
    return FALSE;
  }
  const char *spec = cria_props_get_string (props, "generator");
  if (!spec)
    return TRUE;
  c->gen = cria_generator_new (cria_context_get_registry (ctx), spec, error);
  if (!c->gen) {
    g_prefix_error (error, "generator: ");
    return FALSE;
  }
  const char *cache = cria_props_get_string (props, "cache");
  if (!cache) {
    g_autofree char *dir = g_build_filename (g_get_user_cache_dir (), "cria-1.0", "generations", NULL);
    cria_generator_set_cache_dir (c->gen, dir);
  } else if (strcmp (cache, "none") != 0) {
    cria_generator_set_cache_dir (c->gen, cache);
  }
  c->cached = !cache || strcmp (cache, "none") != 0;
  return TRUE;
}

void
construct_clear (Construct *c)
{
  g_clear_pointer (&c->gen, cria_generator_free);
  g_clear_pointer (&c->prompts, g_hash_table_unref);
  g_clear_pointer (&c->prompts_dir, g_free);
}

const char *
construct_lang_name (ConstructLang lang)
{
  return lang == CONSTRUCT_ZH ? "zh" : "en";
}

ConstructLang
construct_lang_of (const char *prop, const char *text)
{
  if (!g_strcmp0 (prop, "zh"))
    return CONSTRUCT_ZH;
  if (!g_strcmp0 (prop, "en"))
    return CONSTRUCT_EN;
  for (const char *p = text ? text : ""; *p; p = g_utf8_next_char (p))
    if (g_unichar_get_script (g_utf8_get_char (p)) == G_UNICODE_SCRIPT_HAN)
      return CONSTRUCT_ZH;
  return CONSTRUCT_EN;
}

/* Where a prompt file is read from, for loading and for error messages. */
static char *
prompt_path (Construct *c, ConstructLang lang, const char *name)
{
  g_autofree char *file = g_strconcat (name, ".txt", NULL);
  if (c->prompts_dir) {
    char *own = g_build_filename (c->prompts_dir, file, NULL);
    if (g_file_test (own, G_FILE_TEST_EXISTS))
      return own;
    g_free (own);
  }
  g_autofree char *rel = g_build_filename ("construct", construct_lang_name (lang), file, NULL);
  return cria_find_data_file (rel);
}

const char *
construct_prompt (Construct *c, ConstructLang lang, const char *name, GError **error)
{
  g_autofree char *key = g_strconcat (construct_lang_name (lang), "/", name, NULL);
  const char *text = g_hash_table_lookup (c->prompts, key);
  if (text)
    return text;
  g_autofree char *path = prompt_path (c, lang, name);
  char *contents = NULL;
  g_autoptr (GError) ferr = NULL;
  /* a prompt is a page of text: a larger file (or a device) is not one */
  if (!cria_file_get_contents (path, 16 << 20, &contents, NULL, &ferr)) {
    g_set_error (error, CRIA_ERROR, ferr->code == CRIA_ERROR_NOT_FOUND ? CRIA_ERROR_NOT_FOUND : CRIA_ERROR_IO,
                 "prompt file %s", ferr->message);
    return NULL;
  }
  if (!g_utf8_validate (contents, -1, NULL)) {
    g_free (contents);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_PARSE, "prompt file %s: not UTF-8 text", path);
    return NULL;
  }
  g_strchomp (contents);
  g_hash_table_insert (c->prompts, g_steal_pointer (&key), contents);
  return contents;
}

static const char *
pairs_lookup (const char *name, gpointer data)
{
  GPtrArray *pairs = data;
  for (guint i = 0; i + 1 < pairs->len; i += 2)
    if (!strcmp (g_ptr_array_index (pairs, i), name))
      return g_ptr_array_index (pairs, i + 1);
  return NULL;
}

char *
construct_render (Construct *c, ConstructLang lang, const char *name, GError **error, ...)
{
  const char *tmpl = construct_prompt (c, lang, name, error);
  if (!tmpl)
    return NULL;
  g_autoptr (GPtrArray) pairs = g_ptr_array_new ();
  va_list ap;
  va_start (ap, error);
  for (const char *k; (k = va_arg (ap, const char *));) {
    g_ptr_array_add (pairs, (gpointer) k);
    g_ptr_array_add (pairs, va_arg (ap, char *));
  }
  va_end (ap);
  g_autoptr (GError) terr = NULL;
  char *text = cria_template_render (tmpl, pairs_lookup, pairs, &terr);
  if (!text) {
    g_autofree char *path = prompt_path (c, lang, name);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "prompt file %s: %s", path, terr->message);
  }
  return text;
}

CriaGenResult *
construct_ask (Construct *c, char *const *texts, guint n, const guint64 *salts, const char *const *stop, GError **error)
{
  /* MAX: g_new0 of nothing is NULL, which callers read as failure. */
  CriaGenRequest *reqs = g_new0 (CriaGenRequest, MAX (n, 1));
  GPtrArray **msgs = g_new0 (GPtrArray *, MAX (n, 1));
  CriaGenResult *res = g_new0 (CriaGenResult, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    msgs[i] = g_ptr_array_new_with_free_func ((GDestroyNotify) cria_message_free);
    CriaMessage *m = g_new0 (CriaMessage, 1);
    m->role = g_strdup ("user");
    m->content = g_strdup (texts[i]);
    g_ptr_array_add (msgs[i], m);
    reqs[i] = (CriaGenRequest){
      .messages = msgs[i],
      .max_tokens = c->max_tokens,
      .temperature = c->temperature,
      .top_p = c->top_p,
      .seed = (gint64) ((c->seed + salts[i]) & G_MAXINT64),
      .stop = stop,
    };
  }
  guint ok = n ? cria_generator_generate_batch (c->gen, reqs, res, n, NULL) : 0;
  for (guint i = 0; i < n; i++)
    g_ptr_array_unref (msgs[i]);
  g_free (msgs);
  g_free (reqs);
  if (ok == n)
    return res;
  for (guint i = 0; i < n; i++)
    if (res[i].error) {
      g_propagate_prefixed_error (error, g_steal_pointer (&res[i].error), "%s%s%u of %u requests failed (%s): ",
                                  c->finishing ? "" : cria_context_get_stage_name (c->ctx), c->finishing ? "" : ": ",
                                  n - ok, n,
                                  c->cached ? "what was answered is cached: a rerun resumes" : "cache=none: no resume");
      break;
    }
  construct_results_free (res, n);
  return NULL;
}

void
construct_results_free (CriaGenResult *results, guint n)
{
  for (guint i = 0; results && i < n; i++)
    cria_gen_result_clear (&results[i]);
  g_free (results);
}

char *
construct_cut_at (const char *text, const char *const *markers)
{
  const char *cut = NULL;
  for (const char *const *m = markers; m && *m; m++) {
    for (const char *hit = strstr (text, *m); hit; hit = strstr (hit + 1, *m)) {
      /* Only where a line starts, and not the answer's own first line. */
      if (hit == text || hit[-1] != '\n')
        continue;
      if (!cut || hit < cut)
        cut = hit;
      break;
    }
  }
  char *out = cut ? g_strndup (text, (gsize) (cut - text)) : g_strdup (text);
  return g_strstrip (out);
}

void
construct_rng_for (Construct *c, CriaRng *rng, const char *text, guint64 n)
{
  guint64 h = cria_hash64 (text, strlen (text), c->seed);
  cria_rng_init (rng, h ^ (n * G_GUINT64_CONSTANT (0x9e3779b97f4a7c15)));
}
