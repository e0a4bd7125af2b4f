/* cria-chat-template-private.h: the compiled form of a chat template (a tree
 * of nodes, built once by the parser) and the values the evaluator computes
 * with. cria-chat-template(5) documents the language. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* ---- values ---------------------------------------------------------------
 * Values live in an arena freed as a whole when a render ends, so the
 * evaluator never counts references; the template's literals live in the
 * template's own arena. Lists and dicts are immutable once built, except
 * namespace() objects, which `{% set ns.x = ... %}` changes in place. */
typedef enum {
  CT_UNDEFINED,
  CT_NONE,
  CT_BOOL,
  CT_INT,
  CT_FLOAT,
  CT_STRING,
  CT_LIST,
  CT_DICT,
  CT_NAMESPACE,
} CtType;

typedef struct _CtValue CtValue;
struct _CtValue {
  CtType type;
  union {
    gboolean b;
    gint64 i;
    double f;
    struct {
      const char *s; /* NUL-terminated UTF-8 */
      gsize len;     /* in bytes */
    } str;
    struct {
      CtValue **items;
      gsize n, cap;
    } list;
    struct {
      CtValue **keys; /* CT_STRING values */
      CtValue **values;
      gsize n, cap;
    } dict;
    const char *undefined_name; /* what was undefined, for error messages */
  };
};

typedef struct _CtArena CtArena;

CtArena *ct_arena_new (gsize limit);
void ct_arena_free (CtArena *arena);
/* Zeroed memory; past the limit it still allocates, and the evaluator
 * stops at its next step when ct_arena_exhausted() says so. */
gpointer ct_arena_alloc (CtArena *arena, gsize size);
gboolean ct_arena_exhausted (CtArena *arena);

/* Bounds that keep a hostile template or conversation from hanging or
 * exhausting memory: evaluation steps, bytes of output, bytes of values. */
#define CT_MAX_STEPS G_GUINT64_CONSTANT (10000000)
#define CT_MAX_OUTPUT (32u << 20)
#define CT_MAX_ARENA ((gsize) 256 << 20)

/* ---- nodes ---------------------------------------------------------------- */
typedef enum {
  /* statements */
  CN_TEXT,  /* str */
  CN_PRINT, /* a */
  CN_IF,    /* a: condition, body, orelse (an elif is an CN_IF alone in orelse) */
  CN_FOR,   /* str (str2): targets, a: iterable, b: filter or NULL, body, orelse */
  CN_SET,   /* str: name, str2: attribute or NULL, a: value */
  CN_BLOCK, /* body (a {% generation %} block) */
  CN_BREAK, /* {% break %} and {% continue %}, inside a loop */
  CN_CONTINUE,
  /* expressions */
  CN_LITERAL, /* value */
  CN_NAME,    /* str */
  CN_ATTR,    /* a.str */
  CN_ITEM,    /* a[b] */
  CN_SLICE,   /* a[b:c:d], each may be NULL */
  CN_CALL,    /* a(args...), a is CN_NAME (a global) or CN_ATTR (a method) */
  CN_FILTER,  /* a | str(args...) */
  CN_TEST,    /* a is [not] str(args...), negated in op */
  CN_UNARY,   /* op a */
  CN_BINARY,  /* a op b */
  CN_COMPARE, /* a op b, chained through c: a < b < c is (a < b) and (b < c) */
  CN_COND,    /* b if a else c */
  CN_LIST,    /* [args...] or a tuple */
  CN_DICT,    /* {args[0]: args[1], ...} */
} CtNodeKind;

typedef enum {
  CT_OP_NONE,
  CT_OP_OR,
  CT_OP_AND,
  CT_OP_NOT,
  CT_OP_NEG,
  CT_OP_POS,
  CT_OP_ADD,
  CT_OP_SUB,
  CT_OP_MUL,
  CT_OP_DIV,
  CT_OP_FLOORDIV,
  CT_OP_MOD,
  CT_OP_POW,
  CT_OP_CONCAT,
  CT_OP_EQ,
  CT_OP_NE,
  CT_OP_LT,
  CT_OP_LE,
  CT_OP_GT,
  CT_OP_GE,
  CT_OP_IN,
  CT_OP_NOT_IN,
} CtOp;

typedef struct _CtNode CtNode;
struct _CtNode {
  CtNodeKind kind;
  CtOp op;
  guint line, column;
  char *str, *str2;
  CtNode *a, *b, *c, *d;
  GPtrArray *args;   /* of CtNode*: call/filter arguments, list items, dict keys and values */
  GPtrArray *kwargs; /* of char*: the names of the last kwargs->len arguments */
  GPtrArray *body, *orelse;
  CtValue *value;
  gboolean negated;
};

void ct_node_free (CtNode *node);

/* ---- lexing and parsing ------------------------------------------------------ */
typedef enum {
  CT_TK_TEXT,
  CT_TK_VAR_BEGIN,
  CT_TK_VAR_END,
  CT_TK_BLOCK_BEGIN,
  CT_TK_BLOCK_END,
  CT_TK_NAME,
  CT_TK_STRING,
  CT_TK_INT,
  CT_TK_FLOAT,
  CT_TK_OP,
  CT_TK_EOF,
} CtTokKind;

typedef struct {
  CtTokKind kind;
  gsize pos;  /* byte offset in the normalized source */
  char *text; /* TEXT, NAME, STRING, OP */
  gint64 i;
  double f;
} CtTok;

typedef struct {
  const char *src;
  const char *origin;
  GArray *toks; /* of CtTok */
  guint at;
  guint depth;
  guint loops; /* for loops open around the current position */
  CtArena *arena;
  GError *err;
} CtParser;

/* Sets the parser's error (the first one wins) at a byte offset of the
 * source, as origin:line:column: message. */
void ct_parser_error (CtParser *P, gsize pos, const char *fmt, ...) G_GNUC_PRINTF (3, 4);
/* The 1-based line and column (in characters) of a byte offset. */
void ct_line_column (const char *src, gsize pos, guint *line, guint *column);
/* Fills P->toks from P->src, ending with CT_TK_EOF. */
gboolean ct_lex (CtParser *P);
void ct_tok_clear (gpointer tok);

/* Parses a template; errors name origin:line:column. */
GPtrArray *ct_parse (const char *source, const char *origin, CtArena *literals, GError **error);

/* The builtin names the parser accepts (NULL-terminated), so an unknown
 * filter, test, function or method fails when the template is compiled. */
extern const char *const ct_filters[];
extern const char *const ct_tests[];
extern const char *const ct_functions[];
extern const char *const ct_methods[];

/* Renders a parsed template with `vars` (a JSON object of variables). */
char *ct_render (GPtrArray *program, const char *origin, JsonObject *vars, GError **error);

/* ---- what the evaluator and the builtins share ------------------------------ */
typedef struct {
  CtArena *arena;
  const char *origin;
  GString *out;
  guint64 steps;
  GError *error;
  CtValue *small_ints[1024], *bools[2];
  CtNodeKind jump; /* CN_BREAK or CN_CONTINUE while one unwinds to its loop, else 0 */
} CtContext;

/* Sets the render's error (the first one wins) at a node; returns NULL. */
gpointer ct_fail (CtContext *ctx, const CtNode *at, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

CtValue *ct_value_new (CtContext *ctx, CtType type);
CtValue *ct_int (CtContext *ctx, gint64 i);
CtValue *ct_bool (CtContext *ctx, gboolean b);
/* Copies `len` bytes (-1: up to the NUL). */
CtValue *ct_string (CtContext *ctx, const char *s, gssize len);
/* Takes the contents of a GString, which it frees. */
CtValue *ct_string_take (CtContext *ctx, GString *s);
CtValue *ct_list_new (CtContext *ctx, gsize n);
void ct_list_append (CtContext *ctx, CtValue *list, CtValue *item);
/* Adds or replaces (dicts built here have string keys). */
void ct_dict_set (CtContext *ctx, CtValue *dict, const char *key, CtValue *value);
CtValue *ct_dict_get (const CtValue *dict, const char *key);
CtValue *ct_from_json (CtContext *ctx, JsonNode *node);

gboolean ct_truthy (const CtValue *v);

static inline gboolean
ct_is_number (const CtValue *v)
{
  return v->type == CT_INT || v->type == CT_FLOAT || v->type == CT_BOOL;
}

static inline double
ct_as_double (const CtValue *v)
{
  return v->type == CT_FLOAT ? v->f : v->type == CT_INT ? (double) v->i : (double) v->b;
}

gboolean ct_equal (const CtValue *a, const CtValue *b);
const char *ct_type_name (const CtValue *v);
/* Python's str() of the value, appended. */
void ct_append_str (GString *out, const CtValue *v);
/* json.dumps(value, ensure_ascii=False, indent=indent) (indent < 0: none). */
gboolean ct_append_json (GString *out, const CtValue *v, int indent, gboolean sort_keys, int depth);

/* The builtins, called with evaluated arguments; kwargs names the last
 * ones (may be NULL). */
CtValue *ct_call_filter (CtContext *ctx, const CtNode *at, const char *name, CtValue *self, CtValue **args, guint n,
                         GPtrArray *kwargs);
CtValue *ct_call_test (CtContext *ctx, const CtNode *at, const char *name, CtValue *self, CtValue **args, guint n);
CtValue *ct_call_function (CtContext *ctx, const CtNode *at, const char *name, CtValue **args, guint n,
                           GPtrArray *kwargs);
CtValue *ct_call_method (CtContext *ctx, const CtNode *at, const char *name, CtValue *self, CtValue **args, guint n);

G_END_DECLS
