#include "launch/verb.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace umbra {
namespace {

std::vector<std::pair<int, VerbAdder>>& registry() {
  static std::vector<std::pair<int, VerbAdder>> verbs;
  return verbs;
}
int g_exit_code = 0;

}  // namespace

VerbRegistration::VerbRegistration(VerbAdder adder, int order) {
  registry().emplace_back(order, adder);
}

void add_registered_verbs(CLI::App& app) {
  auto verbs = registry();
  std::stable_sort(verbs.begin(), verbs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& v : verbs) v.second(app);
}

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

}  // namespace umbra
