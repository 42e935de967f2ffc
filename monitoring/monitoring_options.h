// The `monitoring.*` configuration block (DESIGN.md §10, §11). Bound with bind_options() under the
// section name "monitoring" by whoever owns the whole options tree (the trainer).
#pragma once

#include <string>

#include "core/options.h"

namespace umbra {

struct MonitoringOptions {
  bool enabled = true;
  int port_base = 9400;
  std::string bind = "127.0.0.1";
  bool required = false;
  bool jsonl = true;
  double linger_s = 0.0;

  template <class V>
  void visit(V& v) {
    v("enabled", enabled,
      "Collect metrics and serve them to Prometheus (off: all metric updates are no-ops)");
    v("port_base", port_base,
      "Each rank serves /metrics on port_base + local_rank; 0 lets the OS pick a free port per "
      "rank (logged, and written to the file_sd target file)",
      InRange{0, 65535});
    v("bind", bind,
      "Address the exporters bind to; 127.0.0.1 keeps them on the machine, 0.0.0.0 exposes them "
      "to a cluster's Prometheus (set it deliberately)");
    v("required", required,
      "Fail at start when a rank cannot bind its port; otherwise warn and train without that "
      "rank's endpoint");
    v("jsonl", jsonl, "Rank 0 appends one JSON object per logged step to <run>/metrics.jsonl");
    v("linger_s", linger_s,
      "Seconds each rank keeps serving its final metrics after training ends, so Prometheus "
      "scrapes the last values of a job shorter than a few scrape intervals (0 = stop at once)",
      InRange{0, 3600});
  }
};

}  // namespace umbra
