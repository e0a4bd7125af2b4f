/* cria-comm-module.h: the MPI communicator, in cria's mpi module
 * (cria-mpi.so) because it links libmpi and what Open MPI brings (hwloc,
 * libevent, PMIx): only a run with --distributed loads it, and a cria built
 * without MPI has everything else (cria-module-private.h). */
#pragma once

#include <cria/cria-comm.h>

G_BEGIN_DECLS

typedef struct {
  gsize size; /* sizeof (CriaCommModule) of the module's build */
  /* MPI_COMM_WORLD, MPI initialized on first use; collectives that wait
   * longer than `timeout_s` (0: forever) stop the job. */
  CriaComm *(*new_world) (double timeout_s, GError **error);
} CriaCommModule;

G_END_DECLS
