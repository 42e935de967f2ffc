#include "comm/world.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>

#include "core/check.h"

namespace umbra {

namespace {

std::optional<int> read_int(const EnvLookup& env, const char* name) {
  const char* text = env(name);
  if (text == nullptr) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  UMBRA_CHECK(*text != '\0' && *end == '\0' && errno == 0 && value >= 0 && value <= 1 << 30,
              "environment variable ", name, "='", text, "': expected a non-negative integer");
  return static_cast<int>(value);
}

int require_int(const EnvLookup& env, const char* name, const char* launcher, const char* set) {
  const std::optional<int> value = read_int(env, name);
  UMBRA_CHECK(value.has_value(), "environment: ", set, " is set (", launcher, ") but ", name,
              " is not");
  return *value;
}

// Slurm's compressed task counts: "2(x3),1" = 2 tasks on each of nodes 0-2, 1 on node 3.
std::optional<int> tasks_on_node(const std::string& spec, int node) {
  size_t pos = 0;
  int first_node = 0;
  while (pos < spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(pos, end - pos);
    char* rest = nullptr;
    const long tasks = std::strtol(item.c_str(), &rest, 10);
    if (rest == item.c_str() || tasks <= 0) return std::nullopt;
    long repeat = 1;
    if (*rest == '(') {
      if (rest[1] != 'x') return std::nullopt;
      char* close = nullptr;
      repeat = std::strtol(rest + 2, &close, 10);
      if (close == rest + 2 || *close != ')' || close[1] != '\0' || repeat <= 0) {
        return std::nullopt;
      }
    } else if (*rest != '\0') {
      return std::nullopt;
    }
    if (node < first_node + repeat) return static_cast<int>(tasks);
    first_node += static_cast<int>(repeat);
    pos = end + 1;
  }
  return std::nullopt;
}

void validate(const WorldInfo& w) {
  UMBRA_CHECK(w.size >= 1 && w.rank < w.size, "environment (", w.source, "): rank ", w.rank,
              " is not below the world size ", w.size);
  UMBRA_CHECK(w.local_size >= 1 && w.local_size <= w.size && w.local_rank < w.local_size,
              "environment (", w.source, "): local rank ", w.local_rank, " of ", w.local_size,
              " processes on this node is inconsistent with the world size ", w.size);
}

}  // namespace

WorldInfo discover_world(const EnvLookup& lookup) {
  const EnvLookup env = lookup ? lookup : [](const char* name) { return std::getenv(name); };
  WorldInfo w;
  if (env("OMPI_COMM_WORLD_RANK") != nullptr) {
    const char* set = "OMPI_COMM_WORLD_RANK";
    w.source = "Open MPI";
    w.rank = require_int(env, "OMPI_COMM_WORLD_RANK", "mpirun", set);
    w.size = require_int(env, "OMPI_COMM_WORLD_SIZE", "mpirun", set);
    w.local_rank = require_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", "mpirun", set);
    w.local_size = require_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", "mpirun", set);
  } else if (env("SLURM_PROCID") != nullptr && env("SLURM_STEP_ID") != nullptr) {
    const char* set = "SLURM_PROCID";
    w.source = "Slurm";
    w.rank = require_int(env, "SLURM_PROCID", "srun", set);
    w.size = require_int(env, "SLURM_NTASKS", "srun", set);
    w.local_rank = require_int(env, "SLURM_LOCALID", "srun", set);
    if (const std::optional<int> per_node = read_int(env, "SLURM_NTASKS_PER_NODE")) {
      w.local_size = *per_node;
    } else {
      const char* spec = env("SLURM_STEP_TASKS_PER_NODE");
      const char* spec_name = "SLURM_STEP_TASKS_PER_NODE";
      if (spec == nullptr) {
        spec = env("SLURM_TASKS_PER_NODE");
        spec_name = "SLURM_TASKS_PER_NODE";
      }
      UMBRA_CHECK(spec != nullptr,
                  "environment: SLURM_PROCID is set (srun) but none of "
                  "SLURM_NTASKS_PER_NODE, SLURM_STEP_TASKS_PER_NODE, "
                  "SLURM_TASKS_PER_NODE is");
      const int node = read_int(env, "SLURM_NODEID").value_or(0);
      const std::optional<int> tasks = tasks_on_node(spec, node);
      UMBRA_CHECK(tasks.has_value(), "environment variable ", spec_name, "='", spec,
                  "': expected task counts like '2(x3),1' covering node ", node);
      w.local_size = *tasks;
    }
  } else if (env("RANK") != nullptr || env("WORLD_SIZE") != nullptr) {
    const char* set = env("RANK") != nullptr ? "RANK" : "WORLD_SIZE";
    w.source = "torchrun";
    w.rank = require_int(env, "RANK", "torchrun-style", set);
    w.size = require_int(env, "WORLD_SIZE", "torchrun-style", set);
    w.local_rank = require_int(env, "LOCAL_RANK", "torchrun-style", set);
    w.local_size = read_int(env, "LOCAL_WORLD_SIZE").value_or(w.size);
  }
  validate(w);
  return w;
}

int affinity_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return machine_cores();
  return std::max(1, CPU_COUNT(&set));
}

int machine_cores() { return static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))); }

int intra_op_threads(int local_size, int requested, int affinity, int machine) {
  if (requested > 0) return requested;
  if (affinity < machine) return std::max(1, affinity);
  return std::max(1, machine / std::max(1, local_size));
}

int intra_op_threads(int local_size, int requested) {
  return intra_op_threads(local_size, requested, affinity_cores(), machine_cores());
}

}  // namespace umbra
