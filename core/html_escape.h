// Escaping text for HTML and SVG (the run report, charts, the audit page and its ROC pictures).
#pragma once

#include <string>

namespace umbra {

// Text with &, <, >, " and ' replaced by entities, for HTML and SVG text and attributes.
std::string html_escape(const std::string& text);

}  // namespace umbra
