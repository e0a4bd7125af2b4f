/* fuzz-serve: any bytes as what a client sends to `cria serve` (the request
 * line, headers, a plain or chunked body, the JSON in it), through libsoup's
 * HTTP/1 parser and cria's checks and request parsing, in process: the
 * server (without a model: requests that pass every check are answered 503)
 * reads the bytes from memory and writes its answer to memory. It must not
 * crash or leak, answer with an HTTP/1.1 status line or not at all, and let
 * go of every connection. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>

#include "../../core/serve/cria-server.h"
#include "fuzz.h"

static CriaServer *server;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (!server) {
    CriaServerOptions o = {
      .model_name = "fuzz", .max_concurrent = 1, .max_body = 256 << 10, .header_timeout = 10, .idle_timeout = 10
    };
    server = cria_server_new (&o);
  }
  g_autoptr (GInputStream) in = g_memory_input_stream_new_from_data (g_memdup2 (data, size), (gssize) size, g_free);
  g_autoptr (GOutputStream) out = g_memory_output_stream_new_resizable ();
  GIOStream *io = g_simple_io_stream_new (in, out);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) local = g_inet_socket_address_new (lo, 8080);
  g_autoptr (GSocketAddress) remote = g_inet_socket_address_new (lo, 40000);
  cria_server_add_stream (server, io, NULL, local, remote);
  /* The server's from now on: it lets go of the connection with the stream. */
  g_object_unref (io);
  for (guint i = 0; i < 100000 && cria_server_get_n_connections (server); i++)
    g_main_context_iteration (NULL, FALSE);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  if (cria_server_get_n_connections (server))
    abort ();
  gsize len = g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (out));
  const char *answer = g_memory_output_stream_get_data (G_MEMORY_OUTPUT_STREAM (out));
  if (len && (len < 12 || (memcmp (answer, "HTTP/1.1 ", 9) && memcmp (answer, "HTTP/1.0 ", 9))))
    abort ();
  return 0;
}
