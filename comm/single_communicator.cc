#include "comm/single_communicator.h"

#include "core/check.h"

namespace umbra {

WorkHandle SingleCommunicator::all_reduce_async(torch::Tensor tensor, ReduceOp,
                                                const std::string& name) {
  UMBRA_CHECK(tensor.defined(), "all_reduce '", name, "': the tensor is undefined");
  return completed_work();
}

WorkHandle SingleCommunicator::broadcast_async(torch::Tensor tensor, int root,
                                               const std::string& name) {
  UMBRA_CHECK(tensor.defined(), "broadcast '", name, "': the tensor is undefined");
  UMBRA_CHECK(root == 0, "broadcast '", name, "': root ", root,
              " is not a rank of a 1-rank communicator");
  return completed_work();
}

WorkHandle SingleCommunicator::all_gather_async(torch::Tensor input, torch::Tensor output,
                                                const std::string& name) {
  UMBRA_CHECK(input.defined() && output.defined(), "all_gather '", name, "': undefined tensor");
  std::vector<int64_t> expected{1};
  for (int64_t d : input.sizes()) expected.push_back(d);
  UMBRA_CHECK(
      output.sizes() == torch::IntArrayRef(expected) && output.scalar_type() == input.scalar_type(),
      "all_gather '", name, "': output must be ", input.scalar_type(), " ",
      torch::IntArrayRef(expected), ", got ", output.scalar_type(), " ", output.sizes());
  output.detach().select(0, 0).copy_(input.detach());
  return completed_work();
}

WorkHandle SingleCommunicator::barrier_async(const std::string&) { return completed_work(); }

}  // namespace umbra
