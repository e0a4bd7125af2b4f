/* serve-grammar-private.h: what the parts of response_format's grammar
 * share: the compiled schema (serve-schema.c), the machine that reads a
 * document against it (serve-grammar.c) and the token mask built on the
 * machine (serve-mask.c). */
#pragma once

#include "serve-grammar.h"

enum {
  T_OBJECT = 1 << 0,
  T_ARRAY = 1 << 1,
  T_STRING = 1 << 2,
  T_NUMBER = 1 << 3,
  T_INTEGER = 1 << 4,
  T_BOOLEAN = 1 << 5,
  T_NULL = 1 << 6,
  T_ALL = (1 << 7) - 1,
};

#define MAX_DEPTH 32

struct _ServeSchema {
  guint types;
  /* object: only these properties (none declared: any key, values `extra`) */
  guint n_props;
  char **names;
  ServeSchema **props;
  guint64 required;
  const ServeSchema *extra;
  /* array */
  const ServeSchema *items;
  gint64 min_items, max_items; /* max < 0: none */
  /* string */
  gint64 min_len, max_len;
  /* enum / const: the values as compact JSON; NULL-terminated */
  char **literals;
  /* anyOf: picked by the first character of the value */
  GPtrArray *any_of;
  GPtrArray *owned; /* the root: every node of the tree */
};

/* `true` as a schema: any value. */
G_GNUC_INTERNAL extern const ServeSchema serve_schema_any;
G_GNUC_INTERNAL void serve_schema_first_chars (const ServeSchema *s, guint8 set[256]);

/* The machine. */
typedef enum {
  F_VALUE,     /* a value begins (whitespace first) */
  F_OBJ_OPEN,  /* after '{' */
  F_KEY,       /* in a member's name */
  F_COLON,     /* after the name */
  F_OBJ_VALUE, /* the member's value is read by the frame above */
  F_OBJ_NEXT,  /* after a member: ',' or '}' */
  F_OBJ_COMMA, /* after ',': a name */
  F_ARR_OPEN,  /* after '[' */
  F_ARR_VALUE,
  F_ARR_NEXT,
  F_ARR_COMMA,
  F_STRING,
  F_NUMBER,
  F_LITERAL,
} State;

typedef struct {
  guint8 state, sub;
  const ServeSchema *s;
  const char *const *lits; /* F_LITERAL */
  gint32 count;            /* bytes of a name or literal, characters of a string, items, number length */
  gint32 key;              /* the member whose value is read; -1 a free one */
  guint64 cand;            /* names or literals still possible */
  guint64 seen;            /* members given */
} Frame;

struct _ServeGrammar {
  const ServeSchema *root;
  guint depth, ws, newlines;
  gboolean done;
  Frame f[MAX_DEPTH];
};

G_GNUC_INTERNAL void serve_grammar_copy (ServeGrammar *to, const ServeGrammar *from);
/* Feeds `g` itself: on FALSE it is left part-way (serve_grammar_feed
 * works on a copy). */
G_GNUC_INTERNAL gboolean serve_grammar_advance (ServeGrammar *g, const char *text, gsize len);
