// Precompiled header shared by every target (see cmake/UmbraTargets.cmake).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
