// The prefetching loader: sampler batches of an in-memory split -> float tensors, ahead of the
// training step (DESIGN.md §4 "Loader").
//
// Memory: the whole split's uint8 images are held in memory (Fashion-MNIST train: 47 MB). Each
// rank holds its own copy, because any rank may need any sample. Datasets larger than memory
// need a different loader.
//
// Threads: the split is read on the constructing thread (all HDF5 calls happen there). Then
// `workers` background threads decode steps ahead into a bounded queue of at most `prefetch`
// steps; next() is called from one consumer thread and returns the micro-batches of each step
// in order. The time next() spends waiting for a step that is not ready yet is the input stall
// (stall_seconds()). An exception in a worker (e.g. a decode error) is rethrown by next() when
// the consumer reaches that step. The destructor stops and joins the workers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/options.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/sampler.h"

namespace umbra {

// Config section `data` (DESIGN.md §11 fixes data.path). Canary keys live elsewhere.
struct DataOptions {
  std::string path;  // dataset directory written by `umbra pack`; required for training
  bool pad_to_32 = false;
  bool hflip = false;
  int64_t prefetch = 4;
  int64_t workers = 1;

  template <class V>
  void visit(V& v) {
    v("path", path, "Dataset directory written by `umbra pack` (required for training)");
    v("pad_to_32", pad_to_32, "Centre images in a 32x32 canvas padded with -1 (black)");
    v("hflip", hflip, "Random horizontal flips, deterministic in (seed, step, sample id)");
    v("prefetch", prefetch, "Steps the loader prepares ahead of the training step", AtLeast{2});
    v("workers", workers, "Background threads decoding batches", InRange{1, 64});
  }
};

// Which part of which batches this process loads.
struct LoaderSpec {
  int rank = 0, world = 1;
  SamplerState start;              // first step to load (seed must equal the sampler's)
  int64_t max_physical_batch = 0;  // cut this rank's part into micro-batches (<= 0: don't)
  int64_t num_steps = -1;          // steps to load before next() returns nullopt (-1: endless)
};

class Loader {
 public:
  // Uses an already loaded split (shared, read-only).
  Loader(std::shared_ptr<const SplitData> split, std::shared_ptr<const Sampler> sampler,
         const DataOptions& options, const LoaderSpec& spec);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Reads `split` of options.path on this thread (throws naming the file on any bad input).
  static std::shared_ptr<const SplitData> load(const DataOptions& options,
                                               const std::string& split);

  // The next micro-batch, or nullopt after spec.num_steps steps. Rethrows worker errors.
  std::optional<Batch> next();

  // Sampler state of the first step whose batches have not all been returned by next(): what a
  // checkpoint taken now stores to resume exactly.
  SamplerState state() const;

  double stall_seconds() const { return stall_seconds_; }  // total consumer wait
  double last_wait_seconds() const { return last_wait_seconds_; }
  int64_t steps_consumed() const { return consumed_; }
  const SplitData& split() const { return *split_; }

 private:
  struct StepItem {
    std::vector<Batch> micro;
    std::exception_ptr error;
  };
  void worker_loop();
  StepItem make_step(int64_t seq) const;

  std::shared_ptr<const SplitData> split_;
  std::shared_ptr<const Sampler> sampler_;
  DataOptions options_;
  LoaderSpec spec_;
  DecodeOptions decode_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int64_t, StepItem> ready_;
  int64_t next_claim_ = 0;  // next step sequence number a worker may take
  int64_t consumed_ = 0;    // steps fully handed to the consumer
  bool stop_ = false;
  std::vector<std::thread> threads_;

  std::deque<Batch> current_;  // remaining micro-batches of the step being consumed
  double stall_seconds_ = 0, last_wait_seconds_ = 0;
};

}  // namespace umbra
