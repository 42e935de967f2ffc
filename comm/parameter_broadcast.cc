#include "comm/parameter_broadcast.h"

#include <sstream>

#include "core/check.h"

namespace umbra {

namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// "'fc.weight' Float [16, 8]" from "fc.weight Float [16, 8]".
std::string quote_name(const std::string& line) {
  const size_t space = line.find(' ');
  return "'" + line.substr(0, space) + "'" + (space == std::string::npos ? "" : line.substr(space));
}

}  // namespace

std::string first_difference(const std::vector<std::string>& rank0, int other_rank,
                             const std::vector<std::string>& other) {
  const std::string r = std::to_string(other_rank);
  for (size_t i = 0; i < rank0.size() || i < other.size(); ++i) {
    if (i < rank0.size() && i < other.size() && rank0[i] == other[i]) continue;
    if (i >= other.size()) {
      return "rank " + r + " has " + std::to_string(other.size()) + " entries, rank 0 has " +
             std::to_string(rank0.size()) + "; the first missing on rank " + r + " is " +
             quote_name(rank0[i]);
    }
    if (i >= rank0.size()) {
      return "rank " + r + " has " + std::to_string(other.size()) + " entries, rank 0 has " +
             std::to_string(rank0.size()) + "; the first extra on rank " + r + " is " +
             quote_name(other[i]);
    }
    const std::string name0 = rank0[i].substr(0, rank0[i].find(' '));
    const std::string name1 = other[i].substr(0, other[i].find(' '));
    if (name0 == name1) {
      return "'" + name0 + "' is" + other[i].substr(name1.size()) + " on rank " + r + " but" +
             rank0[i].substr(name0.size()) + " on rank 0";
    }
    return "entry #" + std::to_string(i) + " is " + quote_name(other[i]) + " on rank " + r +
           " but " + quote_name(rank0[i]) + " on rank 0";
  }
  return "";
}

void broadcast_tensors(Communicator& comm,
                       const std::vector<std::pair<std::string, torch::Tensor>>& named,
                       const std::string& what) {
  std::string description;
  for (const auto& [name, t] : named) {
    std::ostringstream line;
    if (t.defined()) {
      line << name << " " << t.scalar_type() << " " << t.sizes();
    } else {
      line << name << " undefined";
    }
    description += line.str() + "\n";
  }
  const std::vector<std::string> all = comm.all_gather_strings(description, "describe " + what);
  const std::vector<std::string> rank0 = split_lines(all[0]);
  std::string first;
  std::vector<int> differing;
  for (int r = 1; r < comm.size(); ++r) {
    if (all[r] == all[0]) continue;
    if (first.empty()) first = first_difference(rank0, r, split_lines(all[r]));
    differing.push_back(r);
  }
  UMBRA_CHECK(differing.empty(), what, " differ across ranks: ", first,
              " (ranks that differ from rank 0: ", format_ranks(differing), ")");

  std::vector<WorkHandle> pending;
  for (const auto& [name, t] : named) {
    if (t.defined()) pending.push_back(comm.broadcast_async(t.detach(), 0, "broadcast " + name));
  }
  for (const WorkHandle& w : pending) w->wait();
}

void broadcast_parameters(Communicator& comm, torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : module.named_parameters()) named.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) named.emplace_back(item.key(), item.value());
  broadcast_tensors(comm, named, "parameters and buffers");
}

}  // namespace umbra
