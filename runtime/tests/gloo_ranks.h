// Gloo ranks as threads of the test process (collectives_test, pipeline_memory_test).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/collectives/communicator.h"
#include "runtime/collectives/gloo_communicator.h"
#include "test_util.h"

namespace bmsys::rt::test {

// The store rank r meets the others through; `dir` is a fresh directory for file stores.
using StoreFor = std::function<std::shared_ptr<RendezvousStore>(int rank, const std::string& dir)>;

// Runs body(rank, comm) on `world` threads, each with a Gloo communicator of `timeout_s`
// made through store_for(rank, dir) (default: a file store in dir), and expects no rank
// to throw (failures name the rank).
inline void run_gloo_ranks(int world, double timeout_s,
                           const std::function<void(int, std::shared_ptr<Communicator>)>& body,
                           const StoreFor& store_for = {}) {
  TempDir dir;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        DistributedEnv env;
        env.rank = r;
        env.world_size = world;
        env.timeout_s = timeout_s;
        std::shared_ptr<RendezvousStore> store =
            store_for ? store_for(r, dir.path()) : std::shared_ptr<RendezvousStore>(make_file_store(dir.path()));
        body(r, make_gloo_communicator(env, store));
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
}

}  // namespace bmsys::rt::test
