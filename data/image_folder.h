// Importer for a folder of PNG images, one subfolder per class (`umbra pack images`).
//
//   SOURCE/<class>/*.png                      classes = sorted subfolder names; a deterministic
//                                             stratified test split of test_fraction per class
//   SOURCE/train/<class>/*.png + SOURCE/test/<class>/*.png
//                                             the given split; test classes must exist in train
//
// Files are taken in sorted name order within a class; ids are assigned train first (class,
// then file name order), then test. The split draws from core/rng.h stream kSplit (low bits =
// class index) with `seed`, so the same folder always gives the same dataset. Every image must
// have the size and channel count of the first one; otherwise an umbra::Error names the file.
// Non-PNG files are skipped with a warning; a file named *.png that is not a valid PNG is an
// error.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset_writer.h"
#include "data/manifest.h"

namespace umbra {

struct ImageFolderSpec {
  std::string source;          // the folder
  std::string name;            // dataset name; empty = the folder's base name
  double test_fraction = 0.1;  // in [0, 1); ignored when train/ and test/ exist
  uint64_t seed = 0;           // for the test split
};

Manifest pack_image_folder(const ImageFolderSpec& spec, const std::string& out_dir,
                           const PackOptions& options);

}  // namespace umbra
