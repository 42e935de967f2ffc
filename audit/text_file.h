// Small text files written by the audit and the release bundle (SVG, JSON, Markdown, YAML).
#pragma once

#include <string>

namespace umbra {

// Writes `text` to `path` atomically: a temporary name in the same directory, fsync, rename, so
// `path` is either absent/old or complete. Throws umbra::Error naming the file on failure.
void write_text_atomic(const std::string& path, const std::string& text);

// The whole file; throws umbra::Error naming the file when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace umbra
