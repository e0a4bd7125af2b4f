/* cria-chat-template-lex.c: splits a chat template into text and the
 * tokens of its tags.
 *
 * Whitespace is handled as Hugging Face's Jinja environment does it
 * (trim_blocks and lstrip_blocks on), so the indentation of a template such
 * as Qwen's never reaches the prompt. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <cria/cria-error.h>

#include "cria-chat-template-private.h"

void
ct_tok_clear (gpointer p)
{
  g_free (((CtTok *) p)->text);
}

void
ct_line_column (const char *src, gsize pos, guint *line, guint *column)
{
  *line = *column = 1;
  for (gsize i = 0; i < pos && src[i]; i++) {
    if (src[i] == '\n') {
      ++*line;
      *column = 1;
    } else if (((guchar) src[i] & 0xC0) != 0x80) {
      ++*column;
    }
  }
}

void
ct_parser_error (CtParser *P, gsize pos, const char *fmt, ...)
{
  if (P->err)
    return;
  guint line, col;
  ct_line_column (P->src, pos, &line, &col);
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (&P->err, CRIA_ERROR, CRIA_ERROR_PARSE, "%s:%u:%u: %s", P->origin, line, col, msg);
}

static void
push (CtParser *P, CtTokKind kind, gsize pos, char *text)
{
  CtTok t = { kind, pos, text, 0, 0 };
  g_array_append_val (P->toks, t);
}

static gboolean
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static gboolean
lex_string (CtParser *P, gsize *pp)
{
  const char *s = P->src;
  gsize p = *pp;
  char quote = s[p++];
  GString *out = g_string_new (NULL);
  while (s[p] && s[p] != quote) {
    if (s[p] != '\\') {
      g_string_append_c (out, s[p++]);
      continue;
    }
    p++;
    char c = s[p];
    gunichar u = 0;
    int digits = 0;
    switch (c) {
      case 'n':
        g_string_append_c (out, '\n');
        break;
      case 't':
        g_string_append_c (out, '\t');
        break;
      case 'r':
        g_string_append_c (out, '\r');
        break;
      case 'b':
        g_string_append_c (out, '\b');
        break;
      case 'f':
        g_string_append_c (out, '\f');
        break;
      case 'v':
        g_string_append_c (out, '\v');
        break;
      case 'a':
        g_string_append_c (out, '\a');
        break;
      case '\\':
      case '\'':
      case '"':
        g_string_append_c (out, c);
        break;
      case '\n':
        break;
      case 'x':
        digits = 2;
        break;
      case 'u':
        digits = 4;
        break;
      case 'U':
        digits = 8;
        break;
      case '\0':
        goto unterminated;
      default:
        g_string_append_c (out, '\\');
        g_string_append_c (out, c);
        break;
    }
    p++;
    if (digits) {
      for (int k = 0; k < digits; k++, p++) {
        if (!g_ascii_isxdigit (s[p])) {
          ct_parser_error (P, p, "bad \\%c escape in a string", c);
          g_string_free (out, TRUE);
          return FALSE;
        }
        u = u * 16 + g_ascii_xdigit_value (s[p]);
      }
      if (u == 0 || u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF)) {
        ct_parser_error (P, p, "string escape names no character cria can hold (U+%04X)", u);
        g_string_free (out, TRUE);
        return FALSE;
      }
      g_string_append_unichar (out, u);
    }
  }
  if (!s[p]) {
  unterminated:
    ct_parser_error (P, *pp, "unterminated string");
    g_string_free (out, TRUE);
    return FALSE;
  }
  push (P, CT_TK_STRING, *pp, g_string_free (out, FALSE));
  *pp = p + 1;
  return TRUE;
}

static gboolean
lex_number (CtParser *P, gsize *pp)
{
  const char *s = P->src;
  gsize p = *pp;
  while (g_ascii_isdigit (s[p]) || s[p] == '_')
    p++;
  gboolean is_float = FALSE;
  if (s[p] == '.' && g_ascii_isdigit (s[p + 1])) {
    is_float = TRUE;
    for (p++; g_ascii_isdigit (s[p]) || s[p] == '_';)
      p++;
  }
  if ((s[p] == 'e' || s[p] == 'E') &&
      (g_ascii_isdigit (s[p + 1]) || ((s[p + 1] == '+' || s[p + 1] == '-') && g_ascii_isdigit (s[p + 2])))) {
    is_float = TRUE;
    for (p += 2; g_ascii_isdigit (s[p]);)
      p++;
  }
  GString *digits = g_string_new (NULL);
  for (gsize k = *pp; k < p; k++)
    if (s[k] != '_')
      g_string_append_c (digits, s[k]);
  CtTok t = { is_float ? CT_TK_FLOAT : CT_TK_INT, *pp, NULL, 0, 0 };
  errno = 0;
  if (is_float)
    t.f = g_ascii_strtod (digits->str, NULL);
  else
    t.i = g_ascii_strtoll (digits->str, NULL, 10);
  g_string_free (digits, TRUE);
  if (errno) {
    ct_parser_error (P, *pp, "number out of range");
    return FALSE;
  }
  g_array_append_val (P->toks, t);
  *pp = p;
  return TRUE;
}

/* The inside of a {{ }} or {% %} tag, up to and past its closing delimiter.
 * Returns whether the closing delimiter asked to strip what follows (-). */
static gboolean
lex_tag (CtParser *P, gsize *pp, gboolean block, gboolean *strip_after)
{
  const char *s = P->src;
  gsize p = *pp;
  /* Open brackets, so that a dict literal's } is not the tag's end. */
  char open[256];
  guint depth = 0;
  for (;;) {
    while (is_space (s[p]))
      p++;
    if (!s[p]) {
      ct_parser_error (P, *pp, "unterminated %s tag", block ? "{%" : "{{");
      return FALSE;
    }
    gboolean dash = s[p] == '-';
    const char *close = block ? "%}" : "}}";
    if ((block || depth == 0 || open[MIN (depth, sizeof open) - 1] != '{') && strncmp (s + p + dash, close, 2) == 0) {
      push (P, block ? CT_TK_BLOCK_END : CT_TK_VAR_END, p, NULL);
      p += dash + 2;
      *strip_after = dash;
      if (block && !dash && s[p] == '\n')
        p++; /* trim_blocks */
      *pp = p;
      return TRUE;
    }
    char c = s[p];
    if (g_ascii_isalpha (c) || c == '_') {
      gsize b = p;
      while (g_ascii_isalnum (s[p]) || s[p] == '_')
        p++;
      push (P, CT_TK_NAME, b, g_strndup (s + b, p - b));
    } else if (c == '\'' || c == '"') {
      if (!lex_string (P, &p))
        return FALSE;
    } else if (g_ascii_isdigit (c)) {
      if (!lex_number (P, &p))
        return FALSE;
    } else {
      static const char *const two[] = { "//", "**", "==", "!=", "<=", ">=" };
      gsize n = 0;
      for (guint k = 0; k < G_N_ELEMENTS (two); k++)
        if (strncmp (s + p, two[k], 2) == 0)
          n = 2;
      if (!n && strchr ("()[]{},.:|~+-*/%<>=", c))
        n = 1;
      if (!n) {
        if ((guchar) c < 0x20)
          ct_parser_error (P, p, "unexpected character \\x%02x in a tag", (guchar) c);
        else
          ct_parser_error (P, p, "unexpected character '%.*s' in a tag", (int) (g_utf8_next_char (s + p) - (s + p)),
                           s + p);
        return FALSE;
      }
      if (c == '(' || c == '[' || c == '{') {
        if (depth < sizeof open)
          open[depth] = c;
        depth++;
      } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
        depth--;
      }
      push (P, CT_TK_OP, p, g_strndup (s + p, n));
      p += n;
    }
  }
}

gboolean
ct_lex (CtParser *P)
{
  const char *s = P->src;
  gsize p = 0, n = strlen (s);
  gboolean strip_next = FALSE, line_start = TRUE;
  while (p < n) {
    const char *open = NULL;
    for (const char *q = strchr (s + p, '{'); q; q = strchr (q + 1, '{'))
      if (q[1] == '{' || q[1] == '%' || q[1] == '#') {
        open = q;
        break;
      }
    gsize end = open ? (gsize) (open - s) : n;
    gsize tb = p, te = end;
    if (strip_next)
      while (tb < te && is_space (s[tb]))
        tb++;
    if (open) {
      char kind = open[1], mod = open[2];
      if (mod == '-') {
        while (te > tb && is_space (s[te - 1]))
          te--;
      } else if (kind != '{' && mod != '+') {
        /* lstrip_blocks: a block tag alone on its line takes its indentation */
        gsize ls = te;
        while (ls > tb && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
          ls--;
        if ((ls > tb && s[ls - 1] == '\n') || (ls == tb && (tb > p ? s[tb - 1] == '\n' : line_start)))
          te = ls;
      }
    }
    if (te > tb)
      push (P, CT_TK_TEXT, tb, g_strndup (s + tb, te - tb));
    if (!open)
      break;
    p = end + 2;
    gboolean mod = s[p] == '-' || s[p] == '+';
    p += mod;
    if (open[1] == '#') {
      const char *close = strstr (s + p, "#}");
      if (!close) {
        ct_parser_error (P, end, "unterminated comment");
        return FALSE;
      }
      strip_next = close > s + p && close[-1] == '-';
      p = close - s + 2;
      if (!strip_next && s[p] == '\n')
        p++;
    } else {
      gboolean block = open[1] == '%';
      push (P, block ? CT_TK_BLOCK_BEGIN : CT_TK_VAR_BEGIN, end, NULL);
      if (!lex_tag (P, &p, block, &strip_next))
        return FALSE;
    }
    line_start = p > 0 && s[p - 1] == '\n';
  }
  push (P, CT_TK_EOF, n, NULL);
  return TRUE;
}
