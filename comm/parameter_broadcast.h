// Start of data-parallel training: every rank takes rank 0's parameters and buffers
// (DESIGN.md §7), after checking that all ranks hold the same model.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"

namespace umbra {

// Collective. First compares names, dtypes and shapes on all ranks; if any rank differs from
// rank 0, throws umbra::Error on every rank naming the first difference and the ranks that
// differ, e.g. "parameters and buffers differ across ranks: 'fc.weight' is Float [16, 9] on rank 1
// but Float [16, 8] on rank 0 (ranks that differ from rank 0: 1)". Then overwrites every
// tensor in place with rank 0's values (outside autograd). `what` names the set in messages.
void broadcast_tensors(Communicator& comm,
                       const std::vector<std::pair<std::string, torch::Tensor>>& named,
                       const std::string& what = "tensors");

// broadcast_tensors over module.named_parameters() followed by module.named_buffers().
void broadcast_parameters(Communicator& comm, torch::nn::Module& module);

// The first difference between two tensor lists described as "name dtype [shape]" lines, or ""
// when equal (exposed for tests).
std::string first_difference(const std::vector<std::string>& rank0, int other_rank,
                             const std::vector<std::string>& other);

}  // namespace umbra
