/* cria-props.h: typed, declarative property tables of providers.
 *
 * A provider declares its properties once, as a static table; `cria inspect`,
 * the pipeline parser's validation and the man pages all read that table. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
  CRIA_PROP_BOOL,
  CRIA_PROP_INT, /* gint64 */
  CRIA_PROP_DOUBLE,
  CRIA_PROP_STRING,
  CRIA_PROP_ENUM, /* one of the '|'-separated words in `choices` */
} CriaPropType;

typedef enum {
  CRIA_PROP_FLAG_NONE = 0,
  CRIA_PROP_FLAG_REQUIRED = 1 << 0,
} CriaPropFlags;

typedef struct {
  const char *name; /* lower-case words joined by '-' */
  CriaPropType type;
  const char *default_value; /* as text; NULL: unset unless given */
  double minimum;            /* INT/DOUBLE: range, used when minimum < maximum */
  double maximum;
  const char *choices; /* ENUM: "jsonl|json|csv" */
  const char *blurb;   /* one line for `cria inspect` and the man page */
  CriaPropFlags flags;
} CriaPropSpec;

/* Tables end with an entry whose name is NULL. */
#define CRIA_PROP_END                                                                                                  \
  {                                                                                                                    \
    .name = NULL                                                                                                       \
  }

const char *cria_prop_type_name (CriaPropType type);
/* Checks a textual value against one spec (type, range, choices). */
gboolean cria_prop_spec_validate (const CriaPropSpec *spec, const char *value, GError **error);

/* The values of one provider instance, validated against its table. */
typedef struct _CriaProps CriaProps;

CriaProps *cria_props_new (const CriaPropSpec *specs);
void cria_props_free (CriaProps *props);
CriaProps *cria_props_copy (const CriaProps *props);

/* Sets a property from its textual form ("3", "true", "jsonl"), checking the
 * type, the range and the choices. */
gboolean cria_props_set (CriaProps *props, const char *name, const char *value, GError **error);
/* The same for a value the user wrote in a description (name=value words):
 * giving one property twice is an error, not "the last one wins". */
gboolean cria_props_set_given (CriaProps *props, const char *name, const char *value, GError **error);
/* The same from a JSON scalar, as written in a pipeline file. */
gboolean cria_props_set_json (CriaProps *props, const char *name, JsonNode *value, GError **error);
/* Fails naming the first required property that was not set. */
gboolean cria_props_check_required (const CriaProps *props, GError **error);

gboolean cria_props_is_set (const CriaProps *props, const char *name);
gboolean cria_props_get_bool (const CriaProps *props, const char *name);
gint64 cria_props_get_int (const CriaProps *props, const char *name);
double cria_props_get_double (const CriaProps *props, const char *name);
/* NULL when unset and without a default. */
const char *cria_props_get_string (const CriaProps *props, const char *name);
/* The textual value of any property, or NULL when unset. */
const char *cria_props_get_text (const CriaProps *props, const char *name);
const CriaPropSpec *cria_props_get_specs (const CriaProps *props);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaProps, cria_props_free)

G_END_DECLS
