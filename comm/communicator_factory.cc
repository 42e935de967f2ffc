#include "comm/communicator_factory.h"

#include "comm/mpi_check.h"
#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "comm/single_communicator.h"
#include "comm/world.h"
#include "core/check.h"

#if UMBRA_WITH_NCCL
#include "comm/nccl/nccl_communicator.h"
#endif

namespace umbra {

namespace {

int world_size() {
  if (mpi_is_active()) {
    int size = 1;
    UMBRA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    return size;
  }
  const WorldInfo world = discover_world();
  UMBRA_CHECK(world.size == 1, "launched as rank ", world.rank, " of ", world.size, " (",
              world.source,
              " environment) but MPI is not initialised: create an "
              "umbra::MpiSession at the start of main()");
  return 1;
}

}  // namespace

bool nccl_available() {
#if UMBRA_WITH_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(const CommOptions& options,
                                                const torch::Device& device,
                                                TimeoutHandler on_timeout) {
  const std::string& backend = options.backend;
  const int size = world_size();
  const bool cuda = device.is_cuda();
  UMBRA_CHECK(device.is_cpu() || cuda, "comm: device ", device, " is not supported (cpu or cuda)");
  if (backend == "single" || (backend == "auto" && size == 1)) {
    UMBRA_CHECK(size == 1, "comm.backend=single but the job has ", size,
                " ranks; use comm.backend=auto");
    return std::make_unique<SingleCommunicator>();
  }
  UMBRA_CHECK(backend == "auto" || backend == "mpi" || backend == "nccl", "comm.backend: '",
              backend, "' is not one of auto, mpi, nccl, single");
  UMBRA_CHECK(mpi_is_active(), "comm.backend=", backend,
              " needs MPI: create an umbra::MpiSession at the start of main()");
  if (!cuda) {
    UMBRA_CHECK(backend != "nccl",
                "comm.backend=nccl needs a CUDA device, but the device is cpu; use "
                "comm.backend=auto or mpi");
    return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options, std::move(on_timeout));
  }
  UMBRA_CHECK(backend != "mpi", "comm.backend=mpi takes CPU tensors, but the device is ", device,
              "; use comm.backend=auto or nccl");
#if UMBRA_WITH_NCCL
  auto bootstrap =
      std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, options, std::move(on_timeout));
  const int gpu = device.has_index() ? device.index() : bootstrap->local_rank();
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), gpu);
#else
  UMBRA_FAIL("device ", device, " with ", size,
             " ranks needs the NCCL backend, but this build has none: configure with nccl.h and "
             "libnccl available (UMBRA_WITH_NCCL=AUTO|ON, NCCL_HOME)");
#endif
}

}  // namespace umbra
