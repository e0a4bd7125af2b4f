/* cria-modelfiles-private.h: what the model-file readers share inside libcria. */
#pragma once

#include <glib.h>

/* Errors quote names taken from the file (tensor names, pickle globals, JSON
 * parser messages), which may hold newlines or other control bytes: every
 * public reader passes its error through this so it stays one printable line. */
G_GNUC_INTERNAL void mf_one_line (GError **error);
