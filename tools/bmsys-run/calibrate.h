// `bmsys-run calibrate`: measures the rates the compiler's cost model needs
// (docs/autofit.md) on this machine's backend and writes them as a calibration
// file (JSON, "format": "bmsys-calibration", version 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/collectives/communicator.h"

namespace bmsys::rt {

struct CalibrateOptions {
  std::string output;         // the JSON file (rank 0 writes it)
  std::string device = "auto";
  std::string dtype;          // GEMM/attention dtype; default: bf16 where supported, else f32
  int threads = 0;
  double seconds = 0.2;       // time spent per measurement (at least 3 repetitions)
  bool quick = false;         // small sizes only (tests)
};

// Runs the measurements on this process's backend (device LOCAL_RANK) and, with
// several ranks, the collectives among them; rank 0 writes `output` and prints a
// summary. Throws bmsys::rt::Error on failure.
void calibrate(const CalibrateOptions& opts, const DistributedEnv& env);

}  // namespace bmsys::rt
