/* fuzz.h: the libFuzzer entry point every target defines. The same target
 * links either with libFuzzer (--enable-fuzzing, clang) or with replay.c,
 * which runs the committed corpus as a regression test under make check. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* A target that wants fuzz_file() defines _GNU_SOURCE and FUZZ_WANT_FILE
 * before any include. */
#ifdef FUZZ_WANT_FILE
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

/* Readers that take a path get the input as an in-memory file: one memfd per
 * target, rewritten each run, named by its /proc/self/fd path. Never fails
 * silently: a target that cannot make its file aborts. */
static inline const char *
fuzz_file (int *fd, char *path, size_t path_size, const uint8_t *data, size_t size)
{
  if (*fd < 0 && (*fd = memfd_create ("fuzz", 0)) < 0)
    g_error ("memfd_create failed");
  if (ftruncate (*fd, 0) != 0 || pwrite (*fd, data, size, 0) != (ssize_t) size)
    g_error ("cannot write the fuzz input");
  g_snprintf (path, path_size, "/proc/self/fd/%d", *fd);
  return path;
}
#endif
