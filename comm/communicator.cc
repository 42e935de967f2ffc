#include "comm/communicator.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"

namespace umbra {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

namespace {

class CompletedWork final : public Work {
 public:
  void wait() override {}
  bool is_completed() override { return true; }
};

// A short, printable rendering of a value for error messages.
std::string printable(const std::string& value) {
  constexpr size_t kMax = 64;
  std::string out;
  for (size_t i = 0; i < value.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    out += (c >= 32 && c < 127) ? static_cast<char>(c) : '?';
  }
  if (value.size() > kMax) out += "...";
  return "'" + out + "'";
}

}  // namespace

WorkHandle completed_work() { return std::make_shared<CompletedWork>(); }

void Communicator::all_reduce_sum(torch::Tensor tensor, const std::string& name) {
  all_reduce_async(std::move(tensor), ReduceOp::kSum, name)->wait();
}

void Communicator::all_reduce(torch::Tensor tensor, ReduceOp op, const std::string& name) {
  all_reduce_async(std::move(tensor), op, name)->wait();
}

void Communicator::broadcast(torch::Tensor tensor, int root, const std::string& name) {
  broadcast_async(std::move(tensor), root, name)->wait();
}

torch::Tensor Communicator::all_gather(const torch::Tensor& input, const std::string& name) {
  std::vector<int64_t> shape{size()};
  for (int64_t d : input.sizes()) shape.push_back(d);
  torch::Tensor output = torch::empty(shape, input.options());
  all_gather_async(input, output, name)->wait();
  return output;
}

void Communicator::barrier(const std::string& name) { barrier_async(name)->wait(); }

double Communicator::all_reduce_sum(double value, const std::string& name) {
  torch::Tensor t = torch::full({1}, value, torch::kFloat64);
  all_reduce(t, ReduceOp::kSum, name);
  return t.item<double>();
}

int64_t Communicator::all_reduce_sum(int64_t value, const std::string& name) {
  torch::Tensor t = torch::full({1}, value, torch::kInt64);
  all_reduce(t, ReduceOp::kSum, name);
  return t.item<int64_t>();
}

double Communicator::all_reduce_max(double value, const std::string& name) {
  torch::Tensor t = torch::full({1}, value, torch::kFloat64);
  all_reduce(t, ReduceOp::kMax, name);
  return t.item<double>();
}

double Communicator::all_reduce_min(double value, const std::string& name) {
  torch::Tensor t = torch::full({1}, value, torch::kFloat64);
  all_reduce(t, ReduceOp::kMin, name);
  return t.item<double>();
}

std::vector<std::string> Communicator::all_gather_strings(const std::string& value,
                                                          const std::string& name) {
  // Two collectives: the lengths, then the bytes padded to the longest.
  const torch::Tensor lengths = all_gather(
      torch::full({1}, static_cast<int64_t>(value.size()), torch::kInt64), name + " (lengths)");
  const int64_t longest = lengths.max().item<int64_t>();
  torch::Tensor bytes = torch::zeros({longest}, torch::kUInt8);
  if (!value.empty()) std::memcpy(bytes.data_ptr<uint8_t>(), value.data(), value.size());
  const torch::Tensor gathered = all_gather(bytes, name).contiguous();
  std::vector<std::string> out(size());
  for (int r = 0; r < size(); ++r) {
    const auto* row = gathered.data_ptr<uint8_t>() + r * longest;
    out[r].assign(reinterpret_cast<const char*>(row),
                  static_cast<size_t>(lengths[r][0].item<int64_t>()));
  }
  return out;
}

void Communicator::check_same_on_all_ranks(const std::string& what, const std::string& value) {
  const std::string problem =
      describe_differences(what, all_gather_strings(value, "check_same(" + what + ")"));
  UMBRA_CHECK(problem.empty(), problem);
}

std::string format_ranks(std::vector<int> ranks) {
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(ranks[i]);
    if (j > i) out += "-" + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

std::string describe_differences(const std::string& what, const std::vector<std::string>& values) {
  // Groups in order of first appearance, so rank 0's value comes first.
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  for (int r = 0; r < static_cast<int>(values.size()); ++r) {
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == values[r]; });
    if (it == groups.end()) {
      groups.push_back({values[r], {r}});
    } else {
      it->second.push_back(r);
    }
  }
  if (groups.size() <= 1) return "";
  std::string out = what + " differs across ranks: ";
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& ranks = groups[g].second;
    if (g > 0) out += "; ";
    out += (ranks.size() == 1 ? "rank " : "ranks ") + format_ranks(ranks) +
           (ranks.size() == 1 ? " has " : " have ") + printable(groups[g].first);
  }
  return out;
}

}  // namespace umbra
