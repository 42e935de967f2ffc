// The one place that chooses a Communicator backend (STYLE.md "Backends behind one interface").
//
//   comm.backend  device  world size  ->  backend
//   auto          any     1              single (no MPI needed)
//   auto          CPU     > 1            mpi
//   auto          CUDA    > 1            nccl (bootstrapped over an mpi communicator)
//   single        any     1              single; more ranks is an error
//   mpi           CPU     any            mpi
//   nccl          CUDA    any            nccl (also for one rank: a GPU smoke test)
// Anything else (nccl on CPU, mpi on CUDA, CUDA with several ranks in a build without NCCL) is
// an umbra::Error saying what to change. The world size is MPI_COMM_WORLD's when MPI is active;
// otherwise the launcher's environment (comm/world.h) must say 1 rank — if it says more, MPI was
// not initialised, and that is an error naming umbra::MpiSession.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "comm/comm_options.h"
#include "comm/communicator.h"
#include "comm/watchdog.h"

namespace umbra {

// Collective when the result is mpi or nccl (every rank calls it, in the same order). For CUDA,
// the GPU is device.index() if given, else the local rank.
std::unique_ptr<Communicator> make_communicator(const CommOptions& options,
                                                const torch::Device& device,
                                                TimeoutHandler on_timeout = abort_on_timeout);

// Whether this build has the NCCL backend.
bool nccl_available();

}  // namespace umbra
