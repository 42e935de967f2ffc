# umbra_library(NAME SOURCES ... DEPS ...): one static library per folder (DESIGN.md §2),
# warnings on, sanitizer flags, and the shared LibTorch precompiled header.

set(UMBRA_WARNINGS -Wall -Wextra -Wno-unused-parameter)
set(UMBRA_SANITIZE_FLAGS "")
if(UMBRA_SANITIZE STREQUAL "address")
  set(UMBRA_SANITIZE_FLAGS -fsanitize=address -fno-omit-frame-pointer)
elseif(UMBRA_SANITIZE STREQUAL "undefined")
  set(UMBRA_SANITIZE_FLAGS -fsanitize=undefined -fno-omit-frame-pointer)
elseif(NOT UMBRA_SANITIZE STREQUAL "")
  message(FATAL_ERROR "UMBRA_SANITIZE must be address, undefined or empty, not '${UMBRA_SANITIZE}'")
endif()
if(UMBRA_BUILD_FUZZ)
  list(APPEND UMBRA_SANITIZE_FLAGS -fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer)
endif()

# The precompiled header is built once (LibTorch's headers cost ~10 s per file otherwise)
# and reused by every target, which therefore must share compile flags.
add_library(umbra_pch OBJECT ${PROJECT_SOURCE_DIR}/core/pch.cc)
target_link_libraries(umbra_pch PUBLIC torch)
target_compile_options(umbra_pch PRIVATE ${UMBRA_WARNINGS} ${UMBRA_SANITIZE_FLAGS})
target_precompile_headers(umbra_pch PRIVATE ${PROJECT_SOURCE_DIR}/core/pch.h)

function(umbra_common_settings target)
  target_compile_options(${target} PRIVATE ${UMBRA_WARNINGS} ${UMBRA_SANITIZE_FLAGS})
  target_link_options(${target} PRIVATE ${UMBRA_SANITIZE_FLAGS})
  target_precompile_headers(${target} REUSE_FROM umbra_pch)
endfunction()

function(umbra_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  if(NOT ARG_SOURCES)  # a folder whose first source has not been written yet
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  umbra_common_settings(${name})
endfunction()

function(umbra_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  umbra_common_settings(${name})
endfunction()
