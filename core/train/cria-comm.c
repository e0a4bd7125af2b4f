/* cria-comm.c: communicators (cria-comm.h): the common part, and the MPI
 * one loaded from cria's mpi module (cria-comm-module.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <cria/cria-comm.h>
#include <cria/cria-error.h>

#include "../plugin/cria-module-private.h"
#include "cria-comm-module.h"

struct _CriaComm {
  const CriaCommVTable *vt;
  gpointer impl;
  int rank, size;
  gint64 busy_us; /* inside collectives */
};

CriaComm *
cria_comm_new (const CriaCommVTable *vtable, gpointer impl, int rank, int size)
{
  g_return_val_if_fail (vtable != NULL && vtable->size >= sizeof (CriaCommVTable), NULL);
  g_return_val_if_fail (size >= 1 && rank >= 0 && rank < size, NULL);
  CriaComm *comm = g_new0 (CriaComm, 1);
  comm->vt = vtable;
  comm->impl = impl;
  comm->rank = rank;
  comm->size = size;
  return comm;
}

CriaComm *
cria_comm_new_mpi (double timeout_s, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  const CriaCommModule *m = cria_module_load ("mpi", sizeof (CriaCommModule), "cria train --distributed", error);
  if (!m)
    return NULL;
  return m->new_world (timeout_s, error);
}

int
cria_comm_launcher_size (int *rank)
{
  /* Open MPI's mpirun, then MPICH's Hydra and Slurm (PMI). */
  static const char *const vars[][2] = { { "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK" },
                                         { "PMI_SIZE", "PMI_RANK" } };
  for (guint i = 0; i < G_N_ELEMENTS (vars); i++) {
    const char *s = g_getenv (vars[i][0]), *r = g_getenv (vars[i][1]);
    if (s && *s) {
      if (rank)
        *rank = r ? atoi (r) : 0;
      return MAX (atoi (s), 1);
    }
  }
  if (rank)
    *rank = 0;
  return 1;
}

void
cria_comm_free (CriaComm *comm)
{
  if (!comm)
    return;
  comm->vt->free (comm->impl);
  g_free (comm);
}

int
cria_comm_get_rank (const CriaComm *comm)
{
  return comm->rank;
}

int
cria_comm_get_size (const CriaComm *comm)
{
  return comm->size;
}

const char *
cria_comm_get_name (const CriaComm *comm)
{
  return comm->vt->name;
}

double
cria_comm_get_seconds (const CriaComm *comm)
{
  return (double) comm->busy_us / 1e6;
}

gboolean
cria_comm_allreduce_sum (CriaComm *comm, gpointer buf, gsize n, CriaCommType type, GError **error)
{
  g_return_val_if_fail (comm != NULL, FALSE);
  g_return_val_if_fail (buf != NULL || n == 0, FALSE);
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = comm->size == 1 || comm->vt->allreduce_sum (comm->impl, buf, n, type, error);
  comm->busy_us += g_get_monotonic_time () - t0;
  return ok;
}

gboolean
cria_comm_broadcast (CriaComm *comm, gpointer buf, gsize bytes, int root, GError **error)
{
  g_return_val_if_fail (comm != NULL, FALSE);
  g_return_val_if_fail (root >= 0 && root < comm->size, FALSE);
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = comm->size == 1 || comm->vt->broadcast (comm->impl, buf, bytes, root, error);
  comm->busy_us += g_get_monotonic_time () - t0;
  return ok;
}

gboolean
cria_comm_barrier (CriaComm *comm, GError **error)
{
  g_return_val_if_fail (comm != NULL, FALSE);
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = comm->size == 1 || comm->vt->barrier (comm->impl, error);
  comm->busy_us += g_get_monotonic_time () - t0;
  return ok;
}

void
cria_comm_abort (CriaComm *comm, const char *message)
{
  g_autofree char *line = g_strdup_printf ("cria: rank %d of %d: %s", comm->rank, comm->size, message);
  comm->vt->abort (comm->impl, line);
  /* an implementation's abort returns only when it is broken */
  fprintf (stderr, "%s\n", line);
  abort ();
}
