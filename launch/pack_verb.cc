// `umbra pack fashion-mnist|idx|images`: import images into HDF5 shards + manifest.json
// (data/dataset_writer.h: written under a temporary name, renamed when complete).
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

#include "core/check.h"
#include "core/log.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "launch/verb.h"

namespace umbra {
namespace {

struct CommonArgs {
  std::string out;
  int64_t shard_size = 10000;
  std::string compression = "gzip";
  int gzip_level = 1;
  bool force = false;

  PackOptions options() const {
    PackOptions o;
    UMBRA_USAGE_CHECK(shard_size >= 1, "--shard-size: must be at least 1, got ", shard_size);
    o.shard_size = shard_size;
    o.shard.compression = compression == "none" ? Compression::kNone : Compression::kGzip;
    o.shard.gzip_level = gzip_level;
    o.force = force;
    return o;
  }
};

void add_common(CLI::App* cmd, CommonArgs& a) {
  cmd->add_option("--out", a.out, "Output dataset directory (must not exist unless --force)")
      ->required();
  cmd->add_option("--shard-size", a.shard_size, "Images per HDF5 shard")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--compression", a.compression, "Shard compression")
      ->capture_default_str()
      ->check(CLI::IsMember({"gzip", "none"}));
  cmd->add_option("--gzip-level", a.gzip_level, "gzip level when compressing")
      ->capture_default_str()
      ->check(CLI::Range(1, 9));
  cmd->add_flag("--force", a.force, "Replace an existing output directory");
}

std::vector<std::string> split_names(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream in(csv);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

void report(const Manifest& m, const std::string& out,
            std::chrono::steady_clock::time_point start) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("packed %s into %s in %.1f s:", m.name.c_str(), out.c_str(), seconds);
  for (const char* split : {"train", "test"}) {
    if (!m.splits.count(split)) continue;
    const SplitManifest& sm = m.splits.at(split);
    std::printf(" %s %lld images (%zu shard%s);", split, static_cast<long long>(sm.count),
                sm.shards.size(), sm.shards.size() == 1 ? "" : "s");
  }
  std::printf(" %lld classes, %lldx%lldx%lld\nnext: umbra inspect %s\n",
              static_cast<long long>(m.meta.num_classes()), static_cast<long long>(m.meta.channels),
              static_cast<long long>(m.meta.height), static_cast<long long>(m.meta.width),
              out.c_str());
}

void add_pack(CLI::App& app) {
  auto* pack = app.add_subcommand("pack", "Import images into checksummed HDF5 shards");
  pack->require_subcommand(1);

  {
    auto* cmd = pack->add_subcommand("fashion-mnist",
                                     "Pack Fashion-MNIST (60,000 train + "
                                     "10,000 test, ids 0..69999)");
    auto a = std::make_shared<CommonArgs>();
    auto source = std::make_shared<std::string>(kFashionMnistDir);
    cmd->add_option("--source", *source, "Folder with the four Fashion-MNIST .gz IDX files")
        ->capture_default_str();
    add_common(cmd, *a);
    cmd->callback([a, source] {
      const auto start = std::chrono::steady_clock::now();
      report(pack_fashion_mnist(*source, a->out, a->options()), a->out, start);
    });
  }
  {
    auto* cmd = pack->add_subcommand("idx", "Pack IDX image/label files (raw or .gz)");
    auto a = std::make_shared<CommonArgs>();
    auto spec = std::make_shared<IdxImportSpec>();
    auto test = std::make_shared<IdxFiles>();
    auto names = std::make_shared<std::string>();
    cmd->add_option("--images", spec->train.images, "Training images (IDX magic 0x00000803)")
        ->required();
    cmd->add_option("--labels", spec->train.labels, "Training labels (IDX magic 0x00000801)")
        ->required();
    auto* ti = cmd->add_option("--test-images", test->images, "Test images (optional)");
    auto* tl = cmd->add_option("--test-labels", test->labels, "Test labels (optional)");
    ti->needs(tl);
    tl->needs(ti);
    cmd->add_option("--class-names", *names, "Comma-separated class names (default 0,1,...)");
    cmd->add_option("--name", spec->name, "Dataset name")->capture_default_str();
    add_common(cmd, *a);
    cmd->callback([a, spec, test, names] {
      const auto start = std::chrono::steady_clock::now();
      if (!test->images.empty()) spec->test = *test;
      spec->class_names = split_names(*names);
      report(pack_idx(*spec, a->out, a->options()), a->out, start);
    });
  }
  {
    auto* cmd = pack->add_subcommand(
        "images", "Pack a folder of PNGs: SOURCE/<class>/*.png, or SOURCE/{train,test}/<class>/");
    auto a = std::make_shared<CommonArgs>();
    auto spec = std::make_shared<ImageFolderSpec>();
    cmd->add_option("--source", spec->source, "Folder with one subfolder per class")->required();
    cmd->add_option("--test-fraction", spec->test_fraction,
                    "Share of each class held out as the test split (without train/ and test/)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 0.999999));
    cmd->add_option("--seed", spec->seed, "Seed of the test split")->capture_default_str();
    cmd->add_option("--name", spec->name, "Dataset name (default: the folder's name)");
    add_common(cmd, *a);
    cmd->callback([a, spec] {
      const auto start = std::chrono::steady_clock::now();
      report(pack_image_folder(*spec, a->out, a->options()), a->out, start);
    });
  }
}

UMBRA_REGISTER_VERB(add_pack, 10);

}  // namespace
}  // namespace umbra
