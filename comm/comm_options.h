// Options of the communication layer: the `comm.*` configuration keys (DESIGN.md §11).
#pragma once

#include <string>

#include "core/options.h"

namespace umbra {

struct CommOptions {
  // Seconds one collective may wait for all ranks before the watchdog aborts the job.
  double timeout_s = 300;
  // Gradient bucket size in MiB (the all-reduce unit of GradientSync).
  double bucket_mb = 25;
  // Size of the first bucket in MiB: small, so that the first all-reduce starts early in backward.
  double first_bucket_mb = 1;
  // auto: follow the device (CPU -> mpi, CUDA -> nccl; single when the world has one rank).
  std::string backend = "auto";

  template <class V>
  void visit(V& v) {
    v("timeout_s", timeout_s,
      "Seconds a collective may wait for every rank before the watchdog aborts the whole job, "
      "naming the collective and the ranks that did not arrive",
      AtLeast{0.1});
    v("bucket_mb", bucket_mb, "Gradient bucket size in MiB for the overlapped all-reduce",
      AtLeast{0.001});
    v("first_bucket_mb", first_bucket_mb,
      "Size in MiB of the first gradient bucket (small, so communication starts early)",
      AtLeast{0.001});
    v("backend", backend, "Communicator backend; auto follows the device (CPU: mpi, CUDA: nccl)",
      OneOf{"auto", "mpi", "nccl", "single"});
  }
};

}  // namespace umbra
