#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/check.h"
#include "core/log.h"
#include "core/png.h"
#include "core/rng.h"

namespace umbra {
namespace fs = std::filesystem;

namespace {

struct Item {
  std::string path;
  int64_t label = 0;
};

bool is_png_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png";
}

std::vector<std::string> sorted_subdirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && !name.empty() && name[0] != '.') out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// PNG files of one class folder in sorted order; anything else is counted and skipped.
std::vector<std::string> class_files(const fs::path& dir, int64_t& skipped) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (e.is_regular_file() && is_png_name(e.path()))
      out.push_back(e.path().string());
    else
      ++skipped;
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Items of every class under `root`, labelled by index into class_names.
std::vector<std::vector<std::string>> list_classes(const fs::path& root,
                                                   const std::vector<std::string>& class_names,
                                                   int64_t& skipped) {
  std::vector<std::vector<std::string>> per_class;
  for (const auto& name : class_names) {
    per_class.push_back(class_files(root / name, skipped));
    UMBRA_CHECK(!per_class.back().empty(), (root / name).string(),
                ": class folder holds no .png files");
  }
  return per_class;
}

// Stratified split: per class, a Fisher-Yates permutation drawn from (seed, kSplit/class)
// picks round(fraction * n) files for test; both parts keep file-name order.
void split_class(const std::vector<std::string>& files, int64_t label, double fraction,
                 uint64_t seed, std::vector<Item>& train, std::vector<Item>& test) {
  const int64_t n = static_cast<int64_t>(files.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  const uint64_t stream = rng_stream(RngStream::kSplit, static_cast<uint64_t>(label));
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(
        order[i],
        order[rng_below(seed, stream, static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1))]);
  const int64_t n_test = std::llround(fraction * static_cast<double>(n));
  std::vector<bool> is_test(static_cast<size_t>(n), false);
  for (int64_t k = 0; k < n_test; ++k) is_test[order[k]] = true;
  for (int64_t i = 0; i < n; ++i) (is_test[i] ? test : train).push_back({files[i], label});
}

void describe(std::string& s, const PngImage& img) {
  s = std::to_string(img.height) + "x" + std::to_string(img.width) + " with " +
      std::to_string(img.channels) + " channel(s)";
}

}  // namespace

Manifest pack_image_folder(const ImageFolderSpec& spec, const std::string& out_dir,
                           const PackOptions& options) {
  const fs::path root(spec.source);
  UMBRA_CHECK(fs::is_directory(root), spec.source,
              ": not a directory (expected one subfolder "
              "of PNG files per class)");
  UMBRA_CHECK(spec.test_fraction >= 0.0 && spec.test_fraction < 1.0,
              "--test-fraction: must be in [0, 1), got ", spec.test_fraction);
  const bool has_train = fs::is_directory(root / "train");
  const bool has_test = fs::is_directory(root / "test");
  UMBRA_CHECK(has_train == has_test, spec.source, ": has a ", has_train ? "train/" : "test/",
              " folder but no ", has_train ? "test/" : "train/",
              "; use both (a given split) or neither (class folders directly)");

  std::vector<std::string> class_names;
  std::vector<Item> train, test;
  int64_t skipped = 0;
  if (has_train) {
    class_names = sorted_subdirs(root / "train");
    UMBRA_CHECK(!class_names.empty(), (root / "train").string(), ": no class subfolders");
    const auto test_classes = sorted_subdirs(root / "test");
    for (const auto& c : test_classes)
      UMBRA_CHECK(std::binary_search(class_names.begin(), class_names.end(), c),
                  (root / "test" / c).string(), ": class '", c, "' has no folder under train/");
    const auto train_files = list_classes(root / "train", class_names, skipped);
    for (size_t c = 0; c < class_names.size(); ++c) {
      for (const auto& f : train_files[c]) train.push_back({f, static_cast<int64_t>(c)});
      if (fs::is_directory(root / "test" / class_names[c]))
        for (const auto& f : class_files(root / "test" / class_names[c], skipped))
          test.push_back({f, static_cast<int64_t>(c)});
    }
  } else {
    class_names = sorted_subdirs(root);
    UMBRA_CHECK(!class_names.empty(), spec.source, ": no class subfolders (expected ",
                "SOURCE/<class>/*.png)");
    const auto files = list_classes(root, class_names, skipped);
    for (size_t c = 0; c < class_names.size(); ++c)
      split_class(files[c], static_cast<int64_t>(c), spec.test_fraction, spec.seed, train, test);
  }
  UMBRA_CHECK(!train.empty(), spec.source, ": the training split would be empty");
  if (skipped > 0) spdlog::warn("pack: skipped {} entries that are not .png files", skipped);
  spdlog::info("pack: {} classes, {} train and {} test images in {}", class_names.size(),
               train.size(), test.size(), spec.source);

  const PngImage first = read_png(train.front().path);
  DatasetMeta meta;
  meta.class_names = class_names;
  meta.channels = first.channels;
  meta.height = first.height;
  meta.width = first.width;
  meta.source = fs::absolute(root).lexically_normal().string();
  std::string expected;
  describe(expected, first);

  std::string name = spec.name;
  if (name.empty()) name = fs::absolute(root).lexically_normal().filename().string();
  if (name.empty()) name = "images";
  DatasetWriter writer(out_dir, name, meta, options);
  const int64_t image_bytes = meta.image_bytes();
  const int64_t hw = meta.height * meta.width;
  int64_t next_id = 0;
  for (const auto& [split, items] :
       {std::pair<std::string, const std::vector<Item>*>{"train", &train},
        std::pair<std::string, const std::vector<Item>*>{"test", &test}}) {
    constexpr int64_t kBatch = 1024;
    std::vector<uint8_t> chw(static_cast<size_t>(kBatch * image_bytes));
    std::vector<int64_t> labels, ids;
    for (size_t i = 0; i < items->size(); ++i) {
      const Item& item = (*items)[i];
      const PngImage img = read_png(item.path);
      std::string got;
      describe(got, img);
      UMBRA_CHECK(got == expected, item.path, ": image is ", got, ", expected ", expected, " like ",
                  train.front().path, " (all images must share size and channels)");
      uint8_t* dst = chw.data() + labels.size() * image_bytes;
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t c = 0; c < meta.channels; ++c)
          dst[c * hw + p] = img.pixels[p * meta.channels + c];
      labels.push_back(item.label);
      ids.push_back(next_id++);
      if (static_cast<int64_t>(labels.size()) == kBatch || i + 1 == items->size()) {
        writer.add(split, chw.data(), labels.data(), ids.data(),
                   static_cast<int64_t>(labels.size()));
        labels.clear();
        ids.clear();
      }
    }
  }
  return writer.finish();
}

}  // namespace umbra
