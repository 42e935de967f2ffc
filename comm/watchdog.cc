#include "comm/watchdog.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "comm/communicator.h"
#include "comm/mpi_check.h"
#include "comm/mpi_session.h"
#include "core/check.h"

namespace umbra {

namespace {

constexpr int kTagQuery = 7101;
constexpr int kTagReply = 7102;

std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", digits, value);
  return text;
}

}  // namespace

std::string TimeoutReport::message() const {
  std::string out = "umbra: collective " + collective + " at step " + std::to_string(step) +
                    " timed out after " + fixed(waited_s, 1) + " s on rank " +
                    std::to_string(rank) + "; ranks that did not arrive: ";
  if (!side_channel) {
    out += "unknown (no side channel to ask the other ranks";
    out += size > 1 ? ": MPI lacks MPI_THREAD_MULTIPLE)" : ")";
  } else if (not_arrived.empty()) {
    out += "none";
  } else {
    out += format_ranks(not_arrived);
    for (size_t i = 0; i < not_arrived.size() && i < where.size(); ++i) {
      out += " [rank " + std::to_string(not_arrived[i]) + ": " + where[i] + "]";
    }
  }
  if (!no_answer.empty()) {
    out +=
        "; ranks that did not answer the watchdog (dead, or stuck where MPI makes no "
        "progress): " +
        format_ranks(no_answer);
  } else if (side_channel && not_arrived.empty()) {
    out += " (every rank issued it: the collective itself is stuck in MPI/NCCL or the network)";
  }
  out += " (collective #" + std::to_string(sequence) + " of a " + std::to_string(size) +
         "-rank communicator; comm.timeout_s = " + fixed(timeout_s, 1) + ")";
  return out;
}

void abort_on_timeout(const TimeoutReport& report) { abort_job(1, report.message()); }

Watchdog::Watchdog(int rank, int size, double timeout_s, MPI_Comm side_comm,
                   TimeoutHandler on_timeout)
    : rank_(rank),
      size_(size),
      timeout_s_(timeout_s),
      on_timeout_(std::move(on_timeout)),
      side_(side_comm),
      last_change_(Clock::now()) {
  UMBRA_CHECK(timeout_s > 0, "comm.timeout_s: expected a positive number of seconds, got ",
              timeout_s);
  if (side_ != MPI_COMM_NULL) {
    MPI_Comm_set_errhandler(side_, MPI_ERRORS_RETURN);
    post_query_receive();
  }
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (side_ == MPI_COMM_NULL || !mpi_is_active()) return;
  if (query_request_ != MPI_REQUEST_NULL) {
    MPI_Cancel(&query_request_);
    MPI_Wait(&query_request_, MPI_STATUS_IGNORE);
  }
  // Small messages go out eagerly, so pending sends finish at once unless a peer is gone; give
  // them a moment, then let MPI drop what is left. Their buffers must then outlive MPI, so they
  // are handed to a list that is deliberately never freed.
  const auto give_up = Clock::now() + std::chrono::seconds(1);
  while (!sends_.empty() && Clock::now() < give_up) {
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      if (MPI_Test(&it->request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) {
        it = sends_.erase(it);
      } else {
        ++it;
      }
    }
    if (!sends_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!sends_.empty()) {
    auto* orphans = new std::list<PendingSend>();
    orphans->splice(orphans->end(), sends_);
    for (PendingSend& s : *orphans) MPI_Request_free(&s.request);
  }
  MPI_Comm_free(&side_);
}

uint64_t Watchdog::begin(const std::string& name, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t sequence = ++issued_;
  active_[sequence] = Active{name, step, Clock::now()};
  last_name_ = name;
  last_step_ = step;
  last_change_ = Clock::now();
  return sequence;
}

void Watchdog::end(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (active_.erase(sequence) == 0) return;
  ++completed_;
  last_change_ = Clock::now();
}

void Watchdog::run() {
  // Ticks short enough to notice a deadline within ~5% of the timeout, capped at one second.
  const auto tick = std::chrono::duration<double>(std::clamp(timeout_s_ / 20, 0.01, 1.0));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, tick);
    if (stop_) break;
    lock.unlock();
    if (side_ != MPI_COMM_NULL) service_queries();
    lock.lock();
    const auto now = Clock::now();
    for (auto& [sequence, entry] : active_) {
      const double waited = std::chrono::duration<double>(now - entry.start).count();
      if (entry.reported || waited < timeout_s_) continue;
      entry.reported = true;
      const uint64_t late = sequence;
      const Active copy = entry;
      lock.unlock();
      const TimeoutReport report = build_report(late, copy);
      on_timeout_(report);
      lock.lock();
      break;  // active_ may have changed while unlocked; look again next tick
    }
  }
}

void Watchdog::side_channel_failed(const char* call, int rc) {
  std::fprintf(stderr, "umbra: rank %d: watchdog side channel disabled: %s failed: %s\n", rank_,
               call, mpi_error_string(rc).c_str());
  std::fflush(stderr);
  side_ = MPI_COMM_NULL;  // the duplicate leaks; it only matters in a job already in trouble
}

void Watchdog::post_query_receive() {
  const int rc = MPI_Irecv(&query_in_, sizeof(Query), MPI_BYTE, MPI_ANY_SOURCE, kTagQuery, side_,
                           &query_request_);
  if (rc != MPI_SUCCESS) side_channel_failed("MPI_Irecv(query)", rc);
}

Watchdog::Reply Watchdog::snapshot(uint64_t query_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Reply reply{};
  reply.query_id = query_id;
  reply.issued = issued_;
  reply.completed = completed_;
  reply.step = last_step_;
  reply.idle_s = std::chrono::duration<double>(Clock::now() - last_change_).count();
  std::strncpy(reply.name, last_name_.c_str(), sizeof(reply.name) - 1);
  return reply;
}

void Watchdog::service_queries() {
  while (side_ != MPI_COMM_NULL) {
    int arrived = 0;
    MPI_Status status;
    const int rc = MPI_Test(&query_request_, &arrived, &status);
    if (rc != MPI_SUCCESS) return side_channel_failed("MPI_Test(query)", rc);
    if (!arrived) break;
    sends_.push_back(PendingSend{MPI_REQUEST_NULL, snapshot(query_in_.query_id), {}});
    PendingSend& send = sends_.back();
    const int src = status.MPI_SOURCE;
    const int rc_send =
        MPI_Isend(&send.reply, sizeof(Reply), MPI_BYTE, src, kTagReply, side_, &send.request);
    if (rc_send != MPI_SUCCESS) return side_channel_failed("MPI_Isend(reply)", rc_send);
    post_query_receive();
  }
  for (auto it = sends_.begin(); it != sends_.end();) {
    int done = 0;
    if (MPI_Test(&it->request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) {
      it = sends_.erase(it);
    } else {
      ++it;
    }
  }
}

TimeoutReport Watchdog::build_report(uint64_t sequence, const Active& entry) {
  TimeoutReport report;
  report.collective = entry.name;
  report.sequence = sequence;
  report.step = entry.step;
  report.waited_s = std::chrono::duration<double>(Clock::now() - entry.start).count();
  report.timeout_s = timeout_s_;
  report.rank = rank_;
  report.size = size_;
  if (side_ != MPI_COMM_NULL && size_ > 1) ask_peers(sequence, report);
  // After asking: a failing side channel switches itself off.
  report.side_channel = side_ != MPI_COMM_NULL || size_ == 1;
  return report;
}

void Watchdog::ask_peers(uint64_t sequence, TimeoutReport& report) {
  const uint64_t query_id = (static_cast<uint64_t>(rank_) << 40) | ++next_query_id_;
  std::vector<Reply> replies(size_);
  std::vector<MPI_Request> receives(size_, MPI_REQUEST_NULL);
  std::vector<bool> answered(size_, false);
  int waiting = 0;
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    sends_.push_back(PendingSend{MPI_REQUEST_NULL, {}, Query{query_id, sequence}});
    PendingSend& send = sends_.back();
    int rc = MPI_Isend(&send.query, sizeof(Query), MPI_BYTE, peer, kTagQuery, side_, &send.request);
    if (rc == MPI_SUCCESS) {
      rc = MPI_Irecv(&replies[peer], sizeof(Reply), MPI_BYTE, peer, kTagReply, side_,
                     &receives[peer]);
    }
    if (rc != MPI_SUCCESS) {
      side_channel_failed("MPI_Isend/Irecv(watchdog query)", rc);
      break;  // the cleanup below still cancels what was posted
    }
    ++waiting;
  }
  const double grace_s = std::clamp(timeout_s_ / 2, 0.5, 5.0);
  const auto give_up = Clock::now() + std::chrono::duration<double>(grace_s);
  while (waiting > 0 && Clock::now() < give_up && side_ != MPI_COMM_NULL) {
    service_queries();  // peers timing out at the same moment are asking us too
    for (int peer = 0; peer < size_; ++peer) {
      if (receives[peer] == MPI_REQUEST_NULL) continue;
      int done = 0;
      if (MPI_Test(&receives[peer], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done) continue;
      if (replies[peer].query_id == query_id) {
        answered[peer] = true;
        --waiting;
      } else {  // a late answer to an earlier query: listen again
        MPI_Irecv(&replies[peer], sizeof(Reply), MPI_BYTE, peer, kTagReply, side_, &receives[peer]);
      }
    }
    if (waiting > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (int peer = 0; peer < size_; ++peer) {
    if (receives[peer] != MPI_REQUEST_NULL) {
      MPI_Cancel(&receives[peer]);
      MPI_Wait(&receives[peer], MPI_STATUS_IGNORE);
    }
    if (peer == rank_) continue;
    if (!answered[peer]) {
      report.no_answer.push_back(peer);
      continue;
    }
    const Reply& r = replies[peer];
    if (r.issued >= sequence) continue;
    report.not_arrived.push_back(peer);
    std::string where;
    if (r.issued == 0) {
      where = "has issued no collective yet";
    } else {
      where = "last issued #" + std::to_string(r.issued) + " " +
              std::string(r.name, strnlen(r.name, sizeof(r.name))) + " at step " +
              std::to_string(r.step);
      where += r.completed == r.issued ? " (finished)" : " (still running)";
    }
    where += ", idle " + fixed(r.idle_s, 1) + " s";
    report.where.push_back(where);
  }
}

}  // namespace umbra
