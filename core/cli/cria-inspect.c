/* cria-inspect.c: `cria inspect`, the gst-inspect of cria.
 *
 * Everything it prints comes from the providers' own tables, the same ones
 * the pipeline parser validates against. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cria-cli.h"

static gboolean show_rejected;
static gboolean as_json;
static gboolean as_man;
static char *only_kind;

static const GOptionEntry entries[] = {
  { "rejected", 'b', 0, G_OPTION_ARG_NONE, &show_rejected, "List the plugin files that were rejected, with the reason",
    NULL },
  { "kind", 'k', 0, G_OPTION_ARG_STRING, &only_kind,
    "List only providers of KIND (source, transform, sink, tokenizer, model, adapter, metric, backend, generator; "
    "default: all)",
    "KIND" },
  { "json", 0, 0, G_OPTION_ARG_NONE, &as_json, "Print JSON instead of text", NULL },
  { "man", 0, 0, G_OPTION_ARG_NONE, &as_man, "Print every provider as a man page (cria-providers(7))", NULL },
  { NULL },
};

static JsonObject *
plugin_json (const CriaPlugin *plugin)
{
  const CriaPluginDescriptor *d = cria_plugin_get_descriptor (plugin);
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "name", d->name);
  json_object_set_string_member (o, "version", d->version);
  json_object_set_string_member (o, "license", d->license);
  json_object_set_string_member (o, "description", d->description);
  json_object_set_string_member (o, "origin", d->origin);
  json_object_set_string_member (o, "filename", cria_plugin_get_filename (plugin));
  g_autofree char *abi = g_strdup_printf ("%u.%u", d->abi_major, d->abi_minor);
  json_object_set_string_member (o, "abi", abi);
  return o;
}

static char *
range_text (const CriaPropSpec *s)
{
  if (s->type == CRIA_PROP_ENUM)
    return g_strdup (s->choices);
  if ((s->type == CRIA_PROP_INT || s->type == CRIA_PROP_DOUBLE) && s->minimum < s->maximum) {
    /* A bound past 2^53 is "no limit" for any value a user would write. */
    if (s->maximum >= 9007199254740992.0)
      return g_strdup_printf (">= %.0f", s->minimum);
    if (s->type == CRIA_PROP_INT)
      return g_strdup_printf ("%.0f..%.0f", s->minimum, s->maximum);
    return g_strdup_printf ("%g..%g", s->minimum, s->maximum);
  }
  return NULL;
}

static JsonObject *
provider_json (const CriaProvider *p, gboolean full)
{
  const CriaProviderInfo *info = cria_provider_get_info (p);
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "name", info->name);
  json_object_set_string_member (o, "kind", cria_kind_name (cria_provider_get_kind (p)));
  json_object_set_int_member (o, "rank", info->rank);
  json_object_set_string_member (o, "description", info->description);
  json_object_set_string_member (o, "plugin", cria_plugin_get_descriptor (cria_provider_get_plugin (p))->name);
  if (!full)
    return o;
  if (info->example)
    json_object_set_string_member (o, "example", info->example);
  const CriaModelVTable *mvt = cria_model_provider_vtable (p);
  if (mvt) {
    JsonArray *classes = json_array_new ();
    for (const char *const *c = mvt->classes; *c; c++)
      json_array_add_string_element (classes, *c);
    json_object_set_array_member (o, "classes", classes);
  }
  json_object_set_object_member (o, "plugin-details", plugin_json (cria_provider_get_plugin (p)));
  JsonArray *props = json_array_new ();
  for (const CriaPropSpec *s = info->props; s && s->name; s++) {
    JsonObject *po = json_object_new ();
    json_object_set_string_member (po, "name", s->name);
    json_object_set_string_member (po, "type", cria_prop_type_name (s->type));
    if (s->default_value)
      json_object_set_string_member (po, "default", s->default_value);
    else
      json_object_set_null_member (po, "default");
    if (s->type == CRIA_PROP_ENUM) {
      JsonArray *choices = json_array_new ();
      g_auto (GStrv) words = g_strsplit (s->choices ? s->choices : "", "|", -1);
      for (char **w = words; *w; w++)
        json_array_add_string_element (choices, *w);
      json_object_set_array_member (po, "choices", choices);
    } else if ((s->type == CRIA_PROP_INT || s->type == CRIA_PROP_DOUBLE) && s->minimum < s->maximum) {
      json_object_set_double_member (po, "minimum", s->minimum);
      json_object_set_double_member (po, "maximum", s->maximum);
    }
    json_object_set_boolean_member (po, "required", (s->flags & CRIA_PROP_FLAG_REQUIRED) != 0);
    json_object_set_string_member (po, "description", s->blurb);
    json_array_add_object_element (props, po);
  }
  json_object_set_array_member (o, "properties", props);
  return o;
}

static void
print_provider (const CriaProvider *p)
{
  const CriaProviderInfo *info = cria_provider_get_info (p);
  const CriaPlugin *plugin = cria_provider_get_plugin (p);
  const CriaPluginDescriptor *d = cria_plugin_get_descriptor (plugin);
  printf ("%s %s: %s\n", cria_kind_name (cria_provider_get_kind (p)), info->name, info->description);
  if (info->example)
    printf ("  Example:     %s\n", info->example);
  const CriaModelVTable *mvt = cria_model_provider_vtable (p);
  if (mvt) { /* what config.json's "architectures" it answers to */
    g_autofree char *classes = g_strjoinv (", ", (char **) mvt->classes);
    printf ("  Classes:     %s\n", classes);
  }
  /* GStreamer's way: the named step when the rank is one, else the number alone. */
  static const struct {
    int rank;
    const char *name;
  } ranks[] = { { CRIA_RANK_NONE, "none" },
                { CRIA_RANK_MARGINAL, "marginal" },
                { CRIA_RANK_SECONDARY, "secondary" },
                { CRIA_RANK_PRIMARY, "primary" } };
  const char *rank_name = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (ranks); i++)
    if (ranks[i].rank == info->rank)
      rank_name = ranks[i].name;
  if (rank_name)
    printf ("  Rank:        %s (%d)\n", rank_name, info->rank);
  else
    printf ("  Rank:        %d\n", info->rank);
  if (cria_provider_get_kind (p) == CRIA_KIND_BACKEND) {
    /* whether it can run here: a device backend on a machine without one says why not */
    g_autoptr (GError) error = NULL;
    g_autoptr (CriaProps) props = cria_provider_new_props (p);
    g_autoptr (CriaBackend) b = cria_backend_new (p, props, &error);
    g_autofree char *what = b ? cria_backend_describe (b) : NULL;
    printf ("  Device:      %s%s\n", b ? what : "unavailable: ", b ? "" : error->message);
  }
  printf ("\nPlugin details:\n");
  printf ("  Name:        %s\n  Description: %s\n  Version:     %s\n  License:     %s\n  Origin:      %s\n", d->name,
          d->description, d->version, d->license, d->origin);
  printf ("  Filename:    %s\n  ABI:         %u.%u\n",
          cria_plugin_get_filename (plugin) ? cria_plugin_get_filename (plugin) : "(built in)", d->abi_major,
          d->abi_minor);
  printf ("\nProperties:\n");
  if (!info->props || !info->props->name)
    printf ("  none\n");
  for (const CriaPropSpec *s = info->props; s && s->name; s++) {
    g_autofree char *range = range_text (s);
    printf ("  %-20s %s\n", s->name, s->blurb);
    printf ("  %-20s type: %s", "", cria_prop_type_name (s->type));
    if (s->flags & CRIA_PROP_FLAG_REQUIRED)
      printf (", required");
    else
      printf (", default: %s", s->default_value ? s->default_value : "(unset)");
    if (range)
      printf (", %s: %s", s->type == CRIA_PROP_ENUM ? "one of" : "range", range);
    printf ("\n");
  }
  printf ("\n");
}

/* Text safe for roff: backslashes escaped, no line starting with a control character. */
static void
roff (GString *out, const char *text)
{
  if (*text == '.' || *text == '\'')
    g_string_append (out, "\\&");
  for (const char *p = text; *p; p++) {
    if (*p == '\\')
      g_string_append (out, "\\e");
    else if (*p == '-')
      g_string_append (out, "\\-");
    else
      g_string_append_c (out, *p);
  }
}

static char *
man_page (CriaRegistry *reg)
{
  static const char *const headings[CRIA_N_KINDS] = {
    "SOURCES", "TRANSFORMS", "SINKS", "TOKENIZERS", "MODELS", "ADAPTERS", "METRICS", "BACKENDS", "GENERATORS",
  };
  GString *m = g_string_new (NULL);
  g_string_append_printf (m,
                          ".\\\" Generated by cria inspect --man from the providers' property tables.\n"
                          ".TH CRIA-PROVIDERS 7 \"\" \"cria %s\" \"cria manual\"\n"
                          ".SH NAME\ncria-providers \\- the providers of cria's plugins and their properties\n"
                          ".SH DESCRIPTION\n"
                          "Every source, transform, sink, tokenizer, model, adapter, metric, backend and generator\n"
                          "that the plugins built with cria provide, with every property: its type, default, range\n"
                          "or choices, and what it does. The same tables drive\n.BR cria\\-inspect (1)\n"
                          "and the validation of pipelines, so this page cannot disagree with them.\n"
                          "Properties are given as\n.IB name = value\nin a pipeline (see\n.BR cria\\-pipeline (5)).\n",
                          CRIA_VERSION);
  GPtrArray *providers = cria_registry_list (reg);
  for (guint k = 0; k < CRIA_N_KINDS; k++) {
    gboolean header = FALSE;
    for (guint i = 0; i < providers->len; i++) {
      const CriaProvider *p = g_ptr_array_index (providers, i);
      const CriaProviderInfo *info = cria_provider_get_info (p);
      if (cria_provider_get_kind (p) != k)
        continue;
      if (!header)
        g_string_append_printf (m, ".SH %s\n", headings[k]);
      header = TRUE;
      const CriaPluginDescriptor *d = cria_plugin_get_descriptor (cria_provider_get_plugin (p));
      g_string_append (m, ".SS ");
      roff (m, info->name);
      g_string_append (m, "\n");
      roff (m, info->description);
      g_string_append (m, ".\n.br\nPlugin: ");
      roff (m, d->name);
      g_string_append (m, " (");
      roff (m, d->license);
      g_string_append (m, ")\n");
      const CriaModelVTable *mvt = cria_model_provider_vtable (p);
      if (mvt) {
        g_autofree char *classes = g_strjoinv (", ", (char **) mvt->classes);
        g_string_append (m, ".br\nClasses: ");
        roff (m, classes);
        g_string_append (m, "\n");
      }
      if (info->example) {
        g_string_append (m, ".PP\nExample:\n.RS\n.EX\n");
        roff (m, info->example);
        g_string_append (m, "\n.EE\n.RE\n");
      }
      if (!info->props || !info->props->name)
        g_string_append (m, ".PP\nNo properties.\n");
      for (const CriaPropSpec *s = info->props; s && s->name; s++) {
        g_autofree char *range = range_text (s);
        g_string_append (m, ".TP\n.B ");
        roff (m, s->name);
        g_string_append_printf (m, "\n(%s", cria_prop_type_name (s->type));
        if (s->flags & CRIA_PROP_FLAG_REQUIRED) {
          g_string_append (m, ", required");
        } else if (s->default_value) {
          g_string_append (m, ", default ");
          roff (m, *s->default_value ? s->default_value : "\"\"");
        }
        if (range) {
          g_string_append (m, s->type == CRIA_PROP_ENUM ? ", one of " : ", range ");
          roff (m, range);
        }
        g_string_append (m, ")\n");
        roff (m, s->blurb);
        g_string_append (m, "\n");
      }
    }
  }
  g_string_append (m, ".SH SEE ALSO\n.BR cria (1),\n.BR cria\\-inspect (1),\n.BR cria\\-plugins (7)\n");
  return g_string_free (m, FALSE);
}

int
cria_verb_inspect (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[NAME]");
  g_option_context_set_summary (ctx, "Lists the providers of every loaded plugin by kind, or shows one provider\n"
                                     "with its plugin and every property. See cria-inspect(1).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!cria_cli_parse (ctx, &argc, &argv))
    return CRIA_EXIT_USAGE;
  CriaKind kind_filter = CRIA_N_KINDS;
  if (only_kind && !cria_kind_from_name (only_kind, &kind_filter)) {
    g_printerr ("cria inspect: unknown kind '%s'\n", only_kind);
    return CRIA_EXIT_USAGE;
  }
  if (argc > 2) {
    g_printerr ("cria inspect: give at most one provider name\n");
    return CRIA_EXIT_USAGE;
  }
  g_autoptr (CriaRegistry) reg = cria_cli_load_registry ();
  GPtrArray *providers = cria_registry_list (reg);

  if (as_man) {
    g_autofree char *page = man_page (reg);
    fputs (page, stdout);
    return CRIA_EXIT_OK;
  }

  if (show_rejected) {
    GPtrArray *rejected = cria_registry_rejected (reg);
    if (as_json) {
      JsonArray *a = json_array_new ();
      for (guint i = 0; i < rejected->len; i++) {
        CriaRejectedPlugin *r = g_ptr_array_index (rejected, i);
        JsonObject *o = json_object_new ();
        json_object_set_string_member (o, "path", r->path);
        json_object_set_string_member (o, "reason", r->reason);
        json_array_add_object_element (a, o);
      }
      g_autoptr (JsonNode) node = json_node_init_array (json_node_alloc (), a);
      json_array_unref (a);
      cria_cli_print_json (node);
    } else {
      for (guint i = 0; i < rejected->len; i++) {
        CriaRejectedPlugin *r = g_ptr_array_index (rejected, i);
        printf ("%s: %s\n", r->path, r->reason);
      }
      printf ("%u rejected plugin file%s\n", rejected->len, rejected->len == 1 ? "" : "s");
    }
    return CRIA_EXIT_OK;
  }

  if (argc == 2) {
    const char *name = argv[1];
    JsonArray *found = json_array_new ();
    guint n = 0;
    for (guint i = 0; i < providers->len; i++) {
      const CriaProvider *p = g_ptr_array_index (providers, i);
      if (strcmp (cria_provider_get_name (p), name) != 0)
        continue;
      if (kind_filter != CRIA_N_KINDS && cria_provider_get_kind (p) != kind_filter)
        continue;
      n++;
      if (as_json)
        json_array_add_object_element (found, provider_json (p, TRUE));
      else
        print_provider (p);
    }
    if (!n) {
      json_array_unref (found);
      g_printerr (
          "cria inspect: no provider named '%s' (cria inspect lists them; cria inspect -b shows rejected plugins)\n",
          name);
      return CRIA_EXIT_FAILURE;
    }
    if (as_json) {
      g_autoptr (JsonNode) node = json_node_init_array (json_node_alloc (), found);
      cria_cli_print_json (node);
    }
    json_array_unref (found);
    return CRIA_EXIT_OK;
  }

  if (as_json) {
    JsonObject *root = json_object_new ();
    JsonArray *plugins = json_array_new ();
    GPtrArray *all = cria_registry_plugins (reg);
    for (guint i = 0; i < all->len; i++)
      json_array_add_object_element (plugins, plugin_json (g_ptr_array_index (all, i)));
    json_object_set_array_member (root, "plugins", plugins);
    JsonArray *provs = json_array_new ();
    for (guint i = 0; i < providers->len; i++) {
      const CriaProvider *p = g_ptr_array_index (providers, i);
      if (kind_filter == CRIA_N_KINDS || cria_provider_get_kind (p) == kind_filter)
        json_array_add_object_element (provs, provider_json (p, TRUE));
    }
    json_object_set_array_member (root, "providers", provs);
    json_object_set_int_member (root, "rejected", cria_registry_rejected (reg)->len);
    JsonArray *paths = json_array_new ();
    for (const char *const *p = cria_registry_get_paths (reg); *p; p++)
      json_array_add_string_element (paths, *p);
    json_object_set_array_member (root, "search-path", paths);
    g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), root);
    json_object_unref (root);
    cria_cli_print_json (node);
    return CRIA_EXIT_OK;
  }

  for (guint k = 0; k < CRIA_N_KINDS; k++) {
    if (kind_filter != CRIA_N_KINDS && k != kind_filter)
      continue;
    gboolean header = FALSE;
    for (guint i = 0; i < providers->len; i++) {
      const CriaProvider *p = g_ptr_array_index (providers, i);
      if (cria_provider_get_kind (p) != k)
        continue;
      if (!header)
        printf ("%s%s:\n", k && kind_filter == CRIA_N_KINDS ? "\n" : "", cria_kind_name (k));
      header = TRUE;
      printf ("  %-16s %-12s %s\n", cria_provider_get_name (p),
              cria_plugin_get_descriptor (cria_provider_get_plugin (p))->name, cria_provider_get_info (p)->description);
    }
  }
  guint nrej = cria_registry_rejected (reg)->len;
  printf ("\n%u plugins, %u providers%s", cria_registry_plugins (reg)->len, providers->len, nrej ? "" : "\n");
  if (nrej)
    printf (", %u rejected plugin file%s (cria inspect -b)\n", nrej, nrej == 1 ? "" : "s");
  return CRIA_EXIT_OK;
}
