/* cria-comm.h: collective communication between the processes of one
 * data-parallel run: each of `size` ranks holds a replica of the trainable
 * params and computes gradients on its share of every batch; the trainer
 * sums them with cria_comm_allreduce_sum before an identical optimizer step.
 *
 * A communicator is an implementation behind a small table. cria ships one:
 * MPI (cria's mpi module, cria-mpi.so, built when configure finds MPI), for
 * processes on the CPU on one or several machines, started by mpirun. The
 * table is public so that another engine plugs in the same way: NCCL for the
 * CUDA backend would add an all-reduce of device buffers; that is not
 * written yet (the CUDA backend is not in). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _CriaComm CriaComm;

typedef enum {
  CRIA_COMM_F32,
  CRIA_COMM_F64,
} CriaCommType;

/* What an implementation provides. Every call is collective (every rank
 * makes it, in the same order) except abort. A failure is a GError naming
 * the operation; a rank that dies ends the whole job (the launcher's rule
 * under MPI), which is why no call here can hang on a dead peer. */
typedef struct {
  gsize size; /* sizeof (CriaCommVTable) of the implementation's build */
  const char *name;
  /* Sums `n` values of `type` at `buf` over every rank, in place; every
   * rank ends with the same bytes. */
  gboolean (*allreduce_sum) (gpointer impl, gpointer buf, gsize n, CriaCommType type, GError **error);
  /* Copies `bytes` at `buf` from rank `root` to every other rank. */
  gboolean (*broadcast) (gpointer impl, gpointer buf, gsize bytes, int root, GError **error);
  gboolean (*barrier) (gpointer impl, GError **error);
  /* Stops every rank of the job; `message` is printed first. Never returns. */
  void (*abort) (gpointer impl, const char *message);
  void (*free) (gpointer impl);
} CriaCommVTable;

/* A communicator over `impl` (transfer full: vtable->free frees it). */
CriaComm *cria_comm_new (const CriaCommVTable *vtable, gpointer impl, int rank, int size);

/* The MPI communicator over MPI_COMM_WORLD, initializing MPI; from cria's
 * mpi module, loaded here. A collective that waits more than `timeout_s`
 * seconds (0: no limit) for the other ranks stops the job, saying so. Fails
 * (CRIA_ERROR_PLUGIN) naming the reason when this cria was built without
 * MPI or the module is missing. */
CriaComm *cria_comm_new_mpi (double timeout_s, GError **error);

/* The size the launcher gave this process (mpirun sets it in the
 * environment before the program starts: OMPI_COMM_WORLD_SIZE under Open
 * MPI, PMI_SIZE under MPICH and Slurm), with its rank in *rank; 1 and 0
 * when not launched so. Reads the environment only. */
int cria_comm_launcher_size (int *rank);

void cria_comm_free (CriaComm *comm);
int cria_comm_get_rank (const CriaComm *comm);
int cria_comm_get_size (const CriaComm *comm);
const char *cria_comm_get_name (const CriaComm *comm);

gboolean cria_comm_allreduce_sum (CriaComm *comm, gpointer buf, gsize n, CriaCommType type, GError **error);
gboolean cria_comm_broadcast (CriaComm *comm, gpointer buf, gsize bytes, int root, GError **error);
gboolean cria_comm_barrier (CriaComm *comm, GError **error);
/* Prints "cria: rank R of N: MESSAGE" and stops every rank. */
G_NORETURN void cria_comm_abort (CriaComm *comm, const char *message);

/* Seconds spent inside the collective calls since the communicator was made. */
double cria_comm_get_seconds (const CriaComm *comm);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CriaComm, cria_comm_free)

G_END_DECLS
