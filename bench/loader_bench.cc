// Loader throughput: images/s from HDF5 shards to ready float batches (batch 256, one process),
// next to a plain memcpy of the same bytes.
//
//   loader_bench [DATASET_DIR]
//
// Without an argument it packs Fashion-MNIST (/usr/share/datasets/fashion-mnist) three ways -
// uncompressed, gzip level 1 (the default), gzip level 6 - into a temporary directory and
// measures each; with one it measures that dataset's train split. Figures:
//   pack              import + write shards (IDX decode, gzip, SHA-256)
//   open+read+decode  load_split (HDF5 read, inflate, validation, content hash) followed by
//                     decoding every image once into [256, 1, 28, 28] float batches
//   open+read         load_split alone
//   steady state      Loader (EpochSampler, batch 256) output rate, 1 and 2 workers
//   5 ms consumer     input stall when the consumer works 5 ms per step
//   memcpy            copying the split's uint8 image bytes, and as many float32s
// Each figure is given per wall second and per CPU second of this process (the machine may be
// shared; CPU time is what the work costs).
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/loader.h"

namespace {

using namespace umbra;
using Clock = std::chrono::steady_clock;
constexpr int64_t kBatch = 256;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds used by the whole process (all threads): on a shared machine wall time also
// reflects other processes' load, CPU time does not.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Timing {
  double wall = 1e30, cpu = 1e30;
};

// Best of `repeats` runs of fn, wall and CPU seconds.
template <class F>
Timing best_of(int repeats, F fn) {
  Timing best;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    const double c0 = process_cpu_seconds();
    fn();
    best.wall = std::min(best.wall, seconds_since(t0));
    best.cpu = std::min(best.cpu, process_cpu_seconds() - c0);
  }
  return best;
}

void header() {
  std::printf("  %-40s %14s %14s %8s  %s\n", "", "images/s wall", "images/CPU-s", "wall s", "note");
}

void row(const char* what, double images, const Timing& t, const std::string& note = "") {
  std::printf("  %-40s %14.0f %14.0f %8.3f  %s\n", what, images / t.wall, images / t.cpu, t.wall,
              note.c_str());
}

void measure(const std::string& dir, const std::string& label) {
  const Manifest m = Manifest::load(dir);
  uint64_t bytes_on_disk = 0;
  for (const auto& s : m.splits.at("train").shards)
    bytes_on_disk += std::filesystem::file_size(std::filesystem::path(dir) / s.file);
  std::printf("\n%s: %s, train %lld images, %.1f MiB on disk\n", label.c_str(), dir.c_str(),
              static_cast<long long>(m.splits.at("train").count),
              static_cast<double>(bytes_on_disk) / (1 << 20));
  header();

  std::shared_ptr<const SplitData> split;
  const double n = static_cast<double>(m.splits.at("train").count);
  const Timing t_full = best_of(3, [&] {
    split = std::make_shared<const SplitData>(load_split(dir, "train"));
    std::vector<int64_t> pos(kBatch);
    for (int64_t b = 0; b + kBatch <= split->count(); b += kBatch) {
      for (int64_t k = 0; k < kBatch; ++k) pos[k] = b + k;
      Batch out = decode_batch(*split, pos, 0, DecodeOptions{});
      if (out.images.numel() == 0) std::abort();
    }
  });
  row("open+read+decode, shards -> float batches", n, t_full);
  const Timing t_read =
      best_of(3, [&] { split = std::make_shared<const SplitData>(load_split(dir, "train")); });
  row("  of which open+read (HDF5, checks, hash)", n, t_read);

  // Steady state: the consumer takes batches as fast as they come (the production rate).
  for (int workers : {1, 2}) {
    for (bool augment : {false, true}) {
      auto sampler = std::make_shared<EpochSampler>(split->count(), kBatch, 1);
      DataOptions o;
      o.workers = workers;
      o.pad_to_32 = augment;
      o.hflip = augment;
      Loader loader(split, sampler, o,
                    LoaderSpec{0, 1, {1, 0, 0}, 0, 3 * sampler->steps_per_epoch()});
      loader.next();  // start-up excluded
      int64_t images = 0;
      const Timing t = best_of(1, [&] {
        while (auto b = loader.next()) images += b->size();
      });
      char what[96];
      std::snprintf(what, sizeof(what), "steady state, %d worker%s%s", workers,
                    workers > 1 ? "s" : "", augment ? ", pad32+flip" : "");
      row(what, static_cast<double>(images), t);
    }
  }
  // A consumer that spends 5 ms per step, as a training step would: the stall should be ~0.
  {
    auto sampler = std::make_shared<EpochSampler>(split->count(), kBatch, 1);
    DataOptions o;
    o.pad_to_32 = o.hflip = true;
    Loader loader(split, sampler, o, LoaderSpec{0, 1, {1, 0, 0}, 0, 100});
    loader.next();
    const double stall0 = loader.stall_seconds();
    int64_t images = 0;
    const Timing t = best_of(1, [&] {
      while (auto b = loader.next()) {
        images += b->size();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    const double stall = loader.stall_seconds() - stall0;
    char note[96];
    std::snprintf(note, sizeof(note), "input stall %.4f s = %.2f%% of the time", stall,
                  100 * stall / t.wall);
    row("5 ms/step consumer, pad32+flip", static_cast<double>(images), t, note);
  }

  const size_t u8 = split->images.size();
  std::vector<uint8_t> dst8(u8);
  std::vector<float> src32(u8, 0.5f), dst32(u8);
  const Timing t_u8 = best_of(5, [&] { std::memcpy(dst8.data(), split->images.data(), u8); });
  const Timing t_f32 = best_of(5, [&] { std::memcpy(dst32.data(), src32.data(), u8 * 4); });
  char note[64];
  std::snprintf(note, sizeof(note), "%.2f GB/s", u8 / t_u8.wall / 1e9);
  row("memcpy of the uint8 image bytes", n, t_u8, note);
  std::snprintf(note, sizeof(note), "%.2f GB/s", u8 * 4 / t_f32.wall / 1e9);
  row("memcpy of the float32 image bytes", n, t_f32, note);
}

}  // namespace

int main(int argc, char** argv) {
  umbra::init_logging(0);
  spdlog::set_level(spdlog::level::warn);
  try {
    std::printf("loader_bench: batch %lld, one process\n", static_cast<long long>(kBatch));
    if (argc > 1) {
      measure(argv[1], "given dataset");
      return 0;
    }
    const auto tmp = std::filesystem::temp_directory_path() /
                     ("umbra-loader-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(tmp);
    struct Variant {
      const char* name;
      Compression compression;
      int level;
    };
    for (const Variant& v :
         {Variant{"gzip-1", Compression::kGzip, 1}, Variant{"none", Compression::kNone, 1},
          Variant{"gzip-6", Compression::kGzip, 6}}) {
      PackOptions o;
      o.shard.compression = v.compression;
      o.shard.gzip_level = v.level;
      const std::string dir = (tmp / v.name).string();
      const Timing t = best_of(1, [&] { pack_fashion_mnist(umbra::kFashionMnistDir, dir, o); });
      std::printf("\npack fashion-mnist (%s): 70000 images in %.2f s wall, %.2f CPU-s\n", v.name,
                  t.wall, t.cpu);
      measure(dir, std::string("fashion-mnist ") + v.name);
    }
    std::filesystem::remove_all(tmp);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loader_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
