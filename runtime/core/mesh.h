// The process mesh of a distributed run (docs/distributed.md "Rank layout"):
// pipeline stages x data_parallel x tensor_parallel ranks, tensor-parallel ranks
// adjacent, so a tensor-parallel group (which communicates in every layer) is the
// closest ranks, and each stage's ranks consecutive:
//
//   world rank w = (pp_rank * dp + dp_rank) * tp + tp_rank
//
// The tensor-parallel group of w is {dp_rank*tp + t : t < tp}; its data-parallel
// group is {d*tp + tp_rank : d < dp}.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "runtime/core/artifact.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

struct Mesh {
  int dp = 1;
  int tp = 1;
  int pp = 1;  // pipeline stages (bmsys-pipeline-parallel), outermost

  static Mesh of(const Artifact& a) {
    return Mesh{static_cast<int>(std::max<uint32_t>(a.data_parallel_ranks, 1)),
                static_cast<int>(std::max<uint32_t>(a.tensor_parallel_ranks, 1)),
                static_cast<int>(std::max<uint32_t>(a.pipeline_stages, 1))};
  }
  int world() const { return pp * dp * tp; }
  int stage_size() const { return dp * tp; }
  int pp_rank(int w) const { return w / stage_size(); }
  int dp_rank(int w) const { return (w % stage_size()) / tp; }
  int tp_rank(int w) const { return w % tp; }
  std::vector<int> tp_members(int w) const {
    std::vector<int> m;
    for (int t = 0; t < tp; ++t) m.push_back(pp_rank(w) * stage_size() + dp_rank(w) * tp + t);
    return m;
  }
  std::vector<int> dp_members(int w) const {
    std::vector<int> m;
    for (int d = 0; d < dp; ++d) m.push_back(pp_rank(w) * stage_size() + d * tp + tp_rank(w));
    return m;
  }
  // The ranks holding the same rows and slice on every stage: point-to-point
  // activations and gradients, the global norm, the loss.
  std::vector<int> pp_members(int w) const {
    std::vector<int> m;
    for (int p = 0; p < pp; ++p) m.push_back(p * stage_size() + dp_rank(w) * tp + tp_rank(w));
    return m;
  }
  // "2 data-parallel x 2 tensor-parallel ranks", or "2 data-parallel ranks".
  std::string describe() const {
    std::string s = tp == 1 ? fmt::format("{} data-parallel rank{}", dp, dp == 1 ? "" : "s")
                            : fmt::format("{} data-parallel x {} tensor-parallel ranks", dp, tp);
    return pp == 1 ? s : fmt::format("{} pipeline stages x {}", pp, s);
  }
};

// Throws unless a run of `world` processes fits the artifact's mesh.
inline void check_world_size(const Artifact& a, int world) {
  Mesh m = Mesh::of(a);
  if (m.world() == world) return;
  std::string how = m.world() == 1 ? std::string("one process (no --nproc, WORLD_SIZE unset or 1)")
                                   : fmt::format("--nproc {} (or WORLD_SIZE={})", m.world(), m.world());
  if (m.pp > 1)
    fail("{}: the artifact is compiled for {} = {} ranks (pipeline_stages x data_parallel_ranks x "
         "tensor_parallel_ranks), but this run has {} (world size); run it with {}",
         a.path, m.describe(), m.world(), world, how);
  if (m.tp == 1)
    fail("{}: the artifact is compiled for {} (data_parallel_ranks), but this run has {} (world size); run it "
         "with {}",
         a.path, m.describe(), world, how);
  fail("{}: the artifact is compiled for {} = {} ranks (data_parallel_ranks x tensor_parallel_ranks), but this "
       "run has {} (world size); run it with {}",
       a.path, m.describe(), m.world(), world, how);
}

}  // namespace bmsys::rt
