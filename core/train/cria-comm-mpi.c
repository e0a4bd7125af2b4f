/* cria-comm-mpi.c: the MPI communicator (cria-comm.h), cria's mpi module
 * cria-mpi.so (cria-comm-module.h): MPI_COMM_WORLD as mpirun started it.
 *
 *   mpirun -np 2 --bind-to socket cria train --distributed --threads 8 ...
 *
 * Errors return (MPI_ERRORS_RETURN on our own duplicate of the world) and
 * become GErrors; a rank that dies is the launcher's to report: mpirun (and
 * Hydra, and Slurm) names the rank and kills the others. What MPI cannot
 * see, a rank that hangs or a network that stops answering, the time-out
 * sees: each collective is started non-blocking and waited on with a
 * deadline, past which the job is aborted with a message saying where. */
#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <gmodule.h>
#include <mpi.h>

#include <cria/cria-error.h>

#include "cria-comm-module.h"

typedef struct {
  MPI_Comm comm;
  gboolean we_initialized;
  gint64 timeout_us; /* 0: none */
  guint64 calls;     /* collectives so far */
  int kill_rank;     /* the testing hook below; -1: none */
  guint64 kill_call;
  int kill_signal;
  int rank;
} Mpi;

static gboolean
mpi_failed (int rc, const char *what, GError **error)
{
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string (rc, text, &len);
  g_set_error (error, CRIA_ERROR, CRIA_ERROR_IO, "MPI: %s failed: %s", what, text);
  return FALSE;
}

static void
mpi_abort (gpointer impl, const char *message)
{
  Mpi *m = impl;
  fprintf (stderr, "%s\n", message);
  fflush (stderr);
  MPI_Abort (m->comm, 1);
}

/* CRIA_COMM_TEST_KILL=RANK:CALL[:stop]: that rank kills itself (SIGKILL) at
 * its CALL-th collective, as a crash would, or stops (SIGSTOP), as a hang
 * would; the tests of rank failure use it. */
static void
maybe_die (Mpi *m)
{
  if (++m->calls == m->kill_call && m->rank == m->kill_rank)
    raise (m->kill_signal);
}

static gboolean
wait_for (Mpi *m, MPI_Request *req, const char *what, GError **error)
{
  gint64 start = g_get_monotonic_time ();
  for (guint spin = 0;; spin++) {
    int done = 0;
    int rc = MPI_Test (req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
      return mpi_failed (rc, what, error);
    if (done)
      return TRUE;
    /* Spin briefly (a step's all-reduce on one host is short), then let
     * the other ranks of an oversubscribed host have the core, sleeping
     * longer the longer the wait (at most 0.2 ms late). */
    if (spin < 256)
      continue;
    g_usleep (MIN (spin - 255, 200));
    if (m->timeout_us > 0 && (spin & 255) == 0 && g_get_monotonic_time () - start > m->timeout_us) {
      g_autofree char *msg = g_strdup_printf ("cria: rank %d: %s number %" G_GUINT64_FORMAT
                                              " waited %.0f s for the other ranks (a rank hung, or a host "
                                              "stopped answering); stopping the job",
                                              m->rank, what, m->calls, (double) m->timeout_us / 1e6);
      mpi_abort (m, msg);
    }
  }
}

static gboolean
mpi_allreduce_sum (gpointer impl, gpointer buf, gsize n, CriaCommType type, GError **error)
{
  Mpi *m = impl;
  maybe_die (m);
  MPI_Datatype dt = type == CRIA_COMM_F64 ? MPI_DOUBLE : MPI_FLOAT;
  gsize width = type == CRIA_COMM_F64 ? sizeof (double) : sizeof (float);
  /* MPI counts are ints */
  for (gsize done = 0; done < n;) {
    int count = (int) MIN (n - done, (gsize) INT_MAX / 2);
    MPI_Request req;
    int rc = MPI_Iallreduce (MPI_IN_PLACE, (char *) buf + done * width, count, dt, MPI_SUM, m->comm, &req);
    if (rc != MPI_SUCCESS)
      return mpi_failed (rc, "all-reduce", error);
    if (!wait_for (m, &req, "all-reduce", error))
      return FALSE;
    done += (gsize) count;
  }
  return TRUE;
}

static gboolean
mpi_broadcast (gpointer impl, gpointer buf, gsize bytes, int root, GError **error)
{
  Mpi *m = impl;
  maybe_die (m);
  for (gsize done = 0; done < bytes;) {
    int count = (int) MIN (bytes - done, (gsize) INT_MAX / 2);
    MPI_Request req;
    int rc = MPI_Ibcast ((char *) buf + done, count, MPI_BYTE, root, m->comm, &req);
    if (rc != MPI_SUCCESS)
      return mpi_failed (rc, "broadcast", error);
    if (!wait_for (m, &req, "broadcast", error))
      return FALSE;
    done += (gsize) count;
  }
  return TRUE;
}

static gboolean
mpi_barrier (gpointer impl, GError **error)
{
  Mpi *m = impl;
  maybe_die (m);
  MPI_Request req;
  int rc = MPI_Ibarrier (m->comm, &req);
  if (rc != MPI_SUCCESS)
    return mpi_failed (rc, "barrier", error);
  return wait_for (m, &req, "barrier", error);
}

static void
mpi_free (gpointer impl)
{
  Mpi *m = impl;
  MPI_Comm_free (&m->comm);
  int finalized = 0;
  MPI_Finalized (&finalized);
  if (m->we_initialized && !finalized)
    MPI_Finalize ();
  g_free (m);
}

static const CriaCommVTable mpi_vtable = {
  .size = sizeof (CriaCommVTable),
  .name = "mpi",
  .allreduce_sum = mpi_allreduce_sum,
  .broadcast = mpi_broadcast,
  .barrier = mpi_barrier,
  .abort = mpi_abort,
  .free = mpi_free,
};

static CriaComm *
mpi_new_world (double timeout_s, GError **error)
{
  int initialized = 0, rc;
  MPI_Initialized (&initialized);
  g_autofree Mpi *m = g_new0 (Mpi, 1);
  if (!initialized) {
    /* Only the thread that calls cria_comm_* talks to MPI; the backend's
     * threads compute. */
    int provided = 0;
    rc = MPI_Init_thread (NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
      return mpi_failed (rc, "initialization", error), NULL;
    m->we_initialized = TRUE;
  }
  rc = MPI_Comm_dup (MPI_COMM_WORLD, &m->comm);
  if (rc != MPI_SUCCESS)
    return mpi_failed (rc, "MPI_Comm_dup", error), NULL;
  MPI_Comm_set_errhandler (m->comm, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank (m->comm, &rank);
  MPI_Comm_size (m->comm, &size);
  m->rank = rank;
  m->timeout_us = timeout_s > 0 ? (gint64) (timeout_s * 1e6) : 0;
  m->kill_rank = -1;
  const char *kill = g_getenv ("CRIA_COMM_TEST_KILL");
  if (kill && sscanf (kill, "%d:%" G_GUINT64_FORMAT, &m->kill_rank, &m->kill_call) != 2)
    m->kill_rank = -1;
  m->kill_signal = kill && g_str_has_suffix (kill, ":stop") ? SIGSTOP : SIGKILL;
  return cria_comm_new (&mpi_vtable, g_steal_pointer (&m), rank, size);
}

G_MODULE_EXPORT const CriaCommModule cria_module_mpi = { .size = sizeof (CriaCommModule), .new_world = mpi_new_world };
