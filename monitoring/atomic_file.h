// Whole-file replacement that readers never see half done: the file_sd target file (Prometheus
// re-reads it whenever it changes) and report.html (a browser may reload it at any moment).
#pragma once

#include <string>

namespace umbra {

// Writes all of `text` to a temporary sibling of `path` (<path>.tmp.<pid>), fsyncs it and renames
// it over `path`, so `path` is always either the old file or the complete new one. The directory
// must exist. Throws umbra::Error "<what> '<path>': ..." with the system's reason on any failure,
// after removing the temporary file.
void write_file_atomically(const std::string& path, const std::string& text,
                           const std::string& what);

}  // namespace umbra
