// Versions shared by the runtime only. The compiler writes kArtifactFormatVersion
// into Artifact.format_version; the runtime refuses any other value.
#pragma once

#include <cstdint>

namespace bmsys::rt {

inline constexpr uint32_t kArtifactFormatVersion = 1;
inline constexpr const char* kRuntimeVersion = "0.1.0";

}  // namespace bmsys::rt
