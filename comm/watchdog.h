// Watchdog: a collective that does not finish within comm.timeout_s ends the whole job, with a
// message naming the collective, the step, and the ranks that did not arrive (DESIGN.md §7).
//
// How it knows which ranks did not arrive. Every collective gets a sequence number when it is
// issued (1, 2, ... per communicator; identical on all ranks because collectives are issued in
// the same order). Each rank's watchdog thread owns a private duplicate of the world
// communicator (the side channel) and keeps a receive posted on it. When a deadline passes on
// rank r, r's watchdog sends a query to every other rank and waits a short grace period
// (timeout/2, clamped to [0.5, 5] s) for answers. A rank's watchdog answers from its own thread,
// so it answers even while that rank's main thread is stuck in computation or sleeping: it
// reports how many collectives it has issued and completed, the last one's name and step, and
// how long it has been idle. Ranks that issued fewer collectives than r's stuck one "did not
// arrive"; ranks that do not answer within the grace period are named separately (dead, or
// stuck so deep that MPI makes no progress). No traffic flows in the steady state — only when a
// deadline has already passed. The side channel needs MPI_THREAD_MULTIPLE; without it (or for a
// single process) the report names the local rank and the collective only.
//
// The default action prints the report to stderr and calls MPI_Abort(MPI_COMM_WORLD): mpirun
// then kills every rank. A rank killed outright (kill -9) is noticed by mpirun itself, which ends
// the job; the watchdog covers ranks that are alive but stuck.
//
// Thread-safety: begin()/end() may be called from any thread.
#pragma once

#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace umbra {

struct TimeoutReport {
  std::string collective;  // "all_reduce 'grad bucket 1/3'"
  uint64_t sequence = 0;   // number of the collective on its communicator (1-based)
  int64_t step = 0;
  double waited_s = 0;
  double timeout_s = 0;  // comm.timeout_s
  int rank = 0;
  int size = 1;
  bool side_channel = false;       // whether other ranks could be asked
  std::vector<int> not_arrived;    // ranks that had not issued this collective
  std::vector<std::string> where;  // for each of not_arrived: what that rank did last
  std::vector<int> no_answer;      // ranks that did not answer the query in time

  // "umbra: collective <name> at step <s> timed out after <t> s on rank <r>; ranks that did not
  // arrive: <ranks> [rank 1: ...]"
  std::string message() const;
};

using TimeoutHandler = std::function<void(const TimeoutReport&)>;

// The default handler: abort_job(1, report.message()). Never returns.
void abort_on_timeout(const TimeoutReport& report);

class Watchdog {
 public:
  // rank/size: this process in the world the collectives run on. side_comm: a communicator used
  // only by this watchdog (a duplicate of that world), taken over and freed by the destructor; pass
  // MPI_COMM_NULL when there is none. on_timeout is called on the watchdog thread, once per late
  // collective (tests pass a recorder; the default aborts the job).
  Watchdog(int rank, int size, double timeout_s, MPI_Comm side_comm,
           TimeoutHandler on_timeout = abort_on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Registers the next collective (its deadline starts now) and returns its sequence number.
  uint64_t begin(const std::string& name, int64_t step);
  // The collective finished on this rank. Idempotent.
  void end(uint64_t sequence);

  double timeout_s() const { return timeout_s_; }
  bool has_side_channel() const { return side_ != MPI_COMM_NULL; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Active {
    std::string name;
    int64_t step;
    Clock::time_point start;
    bool reported = false;
  };
  // Fixed-size messages of the side channel (raw bytes: ranks share one architecture).
  struct Query {
    uint64_t query_id;
    uint64_t sequence;
  };
  struct Reply {
    uint64_t query_id;
    uint64_t issued;
    uint64_t completed;
    int64_t step;
    double idle_s;
    char name[112];
  };
  struct PendingSend {
    MPI_Request request;
    Reply reply;
    Query query;
  };

  void run();
  void post_query_receive();
  void service_queries();
  Reply snapshot(uint64_t query_id);
  TimeoutReport build_report(uint64_t sequence, const Active& entry);
  void ask_peers(uint64_t sequence, TimeoutReport& report);
  void side_channel_failed(const char* call, int rc);

  const int rank_;
  const int size_;
  const double timeout_s_;
  const TimeoutHandler on_timeout_;
  MPI_Comm side_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  uint64_t issued_ = 0;
  uint64_t completed_ = 0;
  std::string last_name_;
  int64_t last_step_ = 0;
  Clock::time_point last_change_;
  std::map<uint64_t, Active> active_;

  // Watchdog-thread state (the side channel is touched by that thread only).
  MPI_Request query_request_ = MPI_REQUEST_NULL;
  Query query_in_{};
  std::list<PendingSend> sends_;
  uint64_t next_query_id_ = 0;

  std::thread thread_;
};

}  // namespace umbra
