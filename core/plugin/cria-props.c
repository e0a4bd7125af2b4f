/* cria-props.c: property values checked against a provider's table. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <cria/cria-error.h>
#include <cria/cria-json.h>
#include <cria/cria-props.h>

struct _CriaProps {
  const CriaPropSpec *specs;
  guint n_specs;
  char **values;   /* textual, canonical; NULL when unset */
  gboolean *given; /* set by cria_props_set_given: a second time is an error */
};

const char *
cria_prop_type_name (CriaPropType type)
{
  static const char *const names[] = { "bool", "int", "double", "string", "enum" };
  return type < G_N_ELEMENTS (names) ? names[type] : "unknown";
}

static int
find_spec (const CriaProps *props, const char *name)
{
  for (guint i = 0; i < props->n_specs; i++)
    if (strcmp (props->specs[i].name, name) == 0)
      return (int) i;
  return -1;
}

static gboolean
unknown_property (const CriaProps *props, const char *name, GError **error)
{
  g_autoptr (GString) known = g_string_new (NULL);
  for (guint k = 0; k < props->n_specs; k++)
    g_string_append_printf (known, "%s%s", k ? ", " : "", props->specs[k].name);
  g_autofree char *shown = cria_error_quote (name, -1, 60);
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "no property '%s' (known: %s)", shown,
               props->n_specs ? known->str : "none");
  return FALSE;
}

static gboolean
choice_allowed (const char *choices, const char *value)
{
  g_auto (GStrv) words = g_strsplit (choices ? choices : "", "|", -1);
  return g_strv_contains ((const char *const *) words, value);
}

/* Parses and checks one value; returns its canonical text. */
static char *
canonicalize (const CriaPropSpec *spec, const char *value, GError **error)
{
  gboolean ranged = spec->minimum < spec->maximum;
  /* What the user wrote, fit for a one-line message. */
  g_autofree char *shown = cria_error_quote (value, -1, 80);

  switch (spec->type) {
    case CRIA_PROP_BOOL:
      if (!g_ascii_strcasecmp (value, "true") || !strcmp (value, "1") || !g_ascii_strcasecmp (value, "yes"))
        return g_strdup ("true");
      if (!g_ascii_strcasecmp (value, "false") || !strcmp (value, "0") || !g_ascii_strcasecmp (value, "no"))
        return g_strdup ("false");
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                   "property '%s': '%s' is not a boolean (true or false)", spec->name, shown);
      return NULL;
    case CRIA_PROP_INT: {
      char *end = NULL;
      errno = 0;
      gint64 v = g_ascii_strtoll (value, &end, 10);
      if (errno || end == value || *end) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s': '%s' is not an integer",
                     spec->name, shown);
        return NULL;
      }
      if (ranged && ((double) v < spec->minimum || (double) v > spec->maximum)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT,
                     "property '%s': %" G_GINT64_FORMAT " is outside [%.17g, %.17g]", spec->name, v, spec->minimum,
                     spec->maximum);
        return NULL;
      }
      return g_strdup_printf ("%" G_GINT64_FORMAT, v);
    }
    case CRIA_PROP_DOUBLE: {
      char *end = NULL;
      errno = 0;
      double v = g_ascii_strtod (value, &end);
      if (errno || end == value || *end || !isfinite (v)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s': '%s' is not a finite number",
                     spec->name, shown);
        return NULL;
      }
      if (ranged && (v < spec->minimum || v > spec->maximum)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s': %g is outside [%g, %g]",
                     spec->name, v, spec->minimum, spec->maximum);
        return NULL;
      }
      /* The shortest text that reads back as v: 0.8 stays 0.8 when a
       * pipeline is printed back. */
      GString *text = g_string_new (NULL);
      cria_json_append_double (text, v);
      return g_string_free (text, FALSE);
    }
    case CRIA_PROP_ENUM:
      if (!choice_allowed (spec->choices, value)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s': '%s' is not one of %s", spec->name,
                     shown, spec->choices);
        return NULL;
      }
      return g_strdup (value);
    case CRIA_PROP_STRING:
      if (!g_utf8_validate (value, -1, NULL)) {
        g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s': the value is not valid UTF-8",
                     spec->name);
        return NULL;
      }
      return g_strdup (value);
  }
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s' has an unknown type", spec->name);
  return NULL;
}

gboolean
cria_prop_spec_validate (const CriaPropSpec *spec, const char *value, GError **error)
{
  g_return_val_if_fail (spec != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autofree char *canon = canonicalize (spec, value, error);
  return canon != NULL;
}

CriaProps *
cria_props_new (const CriaPropSpec *specs)
{
  CriaProps *props = g_new0 (CriaProps, 1);
  props->specs = specs;
  while (specs && specs[props->n_specs].name)
    props->n_specs++;
  props->values = g_new0 (char *, props->n_specs + 1);
  props->given = g_new0 (gboolean, props->n_specs + 1);
  for (guint i = 0; i < props->n_specs; i++) {
    const CriaPropSpec *spec = &specs[i];
    if (!spec->default_value)
      continue;
    g_autoptr (GError) error = NULL;
    props->values[i] = canonicalize (spec, spec->default_value, &error);
    /* A default that fails its own table is a bug in the provider. */
    if (!props->values[i])
      g_critical ("bad default of %s", error->message);
  }
  return props;
}

void
cria_props_free (CriaProps *props)
{
  if (!props)
    return;
  /* Unset values are NULL in the middle of the array: g_strfreev() would stop there. */
  for (guint i = 0; i < props->n_specs; i++)
    g_free (props->values[i]);
  g_free (props->values);
  g_free (props->given);
  g_free (props);
}

CriaProps *
cria_props_copy (const CriaProps *props)
{
  g_return_val_if_fail (props != NULL, NULL);
  CriaProps *copy = g_new0 (CriaProps, 1);
  copy->specs = props->specs;
  copy->n_specs = props->n_specs;
  copy->values = g_new0 (char *, props->n_specs + 1);
  copy->given = g_memdup2 (props->given, (props->n_specs + 1) * sizeof (gboolean));
  for (guint i = 0; i < props->n_specs; i++)
    copy->values[i] = g_strdup (props->values[i]);
  return copy;
}

gboolean
cria_props_set (CriaProps *props, const char *name, const char *value, GError **error)
{
  g_return_val_if_fail (props != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  int i = find_spec (props, name);
  if (i < 0)
    return unknown_property (props, name, error);
  char *canon = canonicalize (&props->specs[i], value, error);
  if (!canon)
    return FALSE;
  g_free (props->values[i]);
  props->values[i] = canon;
  return TRUE;
}

gboolean
cria_props_set_given (CriaProps *props, const char *name, const char *value, GError **error)
{
  int i = find_spec (props, name);
  if (i >= 0 && props->given[i]) {
    /* head n=1 n=2 meant one of them; which is not ours to guess. */
    g_autofree char *first = cria_error_quote (props->values[i], -1, 40);
    g_autofree char *second = cria_error_quote (value, -1, 40);
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s' is given twice (%s=%s and %s=%s)",
                 props->specs[i].name, props->specs[i].name, first, props->specs[i].name, second);
    return FALSE;
  }
  if (!cria_props_set (props, name, value, error))
    return FALSE;
  props->given[i] = TRUE;
  return TRUE;
}

gboolean
cria_props_set_json (CriaProps *props, const char *name, JsonNode *value, GError **error)
{
  g_return_val_if_fail (props != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (find_spec (props, name) < 0)
    return unknown_property (props, name, error);
  if (!JSON_NODE_HOLDS_VALUE (value)) {
    g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s': expected a string, number or boolean",
                 name);
    return FALSE;
  }
  switch (json_node_get_value_type (value)) {
    case G_TYPE_STRING:
      return cria_props_set (props, name, json_node_get_string (value), error);
    case G_TYPE_BOOLEAN:
      return cria_props_set (props, name, json_node_get_boolean (value) ? "true" : "false", error);
    case G_TYPE_INT64: {
      g_autofree char *text = g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (value));
      return cria_props_set (props, name, text, error);
    }
    case G_TYPE_DOUBLE: {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      return cria_props_set (props, name, g_ascii_dtostr (buf, sizeof buf, json_node_get_double (value)), error);
    }
    default:
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s': unsupported JSON value", name);
      return FALSE;
  }
}

gboolean
cria_props_check_required (const CriaProps *props, GError **error)
{
  g_return_val_if_fail (props != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  for (guint i = 0; i < props->n_specs; i++) {
    if ((props->specs[i].flags & CRIA_PROP_FLAG_REQUIRED) && !props->values[i]) {
      g_set_error (error, CRIA_ERROR, CRIA_ERROR_INVALID_ARGUMENT, "property '%s' is required", props->specs[i].name);
      return FALSE;
    }
  }
  return TRUE;
}

static const char *
lookup (const CriaProps *props, const char *name, CriaPropType type)
{
  int i = find_spec (props, name);
  if (i < 0) {
    g_critical ("no property '%s' in this table", name);
    return NULL;
  }
  if (props->specs[i].type != type && !(type == CRIA_PROP_STRING && props->specs[i].type == CRIA_PROP_ENUM))
    g_critical ("property '%s' is a %s, not a %s", name, cria_prop_type_name (props->specs[i].type),
                cria_prop_type_name (type));
  return props->values[i];
}

gboolean
cria_props_is_set (const CriaProps *props, const char *name)
{
  g_return_val_if_fail (props != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  int i = find_spec (props, name);
  return i >= 0 && props->values[i] != NULL;
}

gboolean
cria_props_get_bool (const CriaProps *props, const char *name)
{
  g_return_val_if_fail (props != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  const char *v = lookup (props, name, CRIA_PROP_BOOL);
  return v && strcmp (v, "true") == 0;
}

gint64
cria_props_get_int (const CriaProps *props, const char *name)
{
  g_return_val_if_fail (props != NULL, 0);
  g_return_val_if_fail (name != NULL, 0);
  const char *v = lookup (props, name, CRIA_PROP_INT);
  return v ? g_ascii_strtoll (v, NULL, 10) : 0;
}

double
cria_props_get_double (const CriaProps *props, const char *name)
{
  g_return_val_if_fail (props != NULL, 0.0);
  g_return_val_if_fail (name != NULL, 0.0);
  const char *v = lookup (props, name, CRIA_PROP_DOUBLE);
  return v ? g_ascii_strtod (v, NULL) : 0.0;
}

const char *
cria_props_get_string (const CriaProps *props, const char *name)
{
  g_return_val_if_fail (props != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  return lookup (props, name, CRIA_PROP_STRING);
}

const char *
cria_props_get_text (const CriaProps *props, const char *name)
{
  g_return_val_if_fail (props != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  int i = find_spec (props, name);
  return i < 0 ? NULL : props->values[i];
}

const CriaPropSpec *
cria_props_get_specs (const CriaProps *props)
{
  g_return_val_if_fail (props != NULL, NULL);
  return props->specs;
}
