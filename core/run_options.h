// run.* keys (DESIGN.md §11): where a run lives and how it starts.
#pragma once

#include <cstdint>
#include <string>

#include "core/options.h"

namespace umbra {

struct RunOptions {
  std::string name = "umbra";
  std::string dir = "runs";
  int64_t seed = 0;
  std::string resume = "auto";
  bool log_sample_ids = false;

  // The run directory: <dir>/<name>.
  std::string path() const { return dir + "/" + name; }

  template <class V>
  void visit(V& v) {
    v("name", name, "Run name; the run directory is <run.dir>/<run.name>");
    v("dir", dir, "Parent directory of run directories");
    v("seed", seed, "Seed of every random stream (sampling, init, noise unless secure_mode)",
      AtLeast{0});
    v("resume", resume,
      "auto: continue from the newest complete checkpoint if any; never: refuse an existing run "
      "directory; or the path of one of this run's checkpoints (<run>/<stage>/checkpoints/step_N)");
    v("log_sample_ids", log_sample_ids,
      "Every rank appends '<global step> <id> <id> ...' per step to "
      "<run>/<stage>/sample_ids.rank<R>.txt (for checking that resumed epochs see every sample "
      "once); '# resume <step>' marks a resume");
  }
};

}  // namespace umbra
