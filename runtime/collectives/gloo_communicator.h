// The Gloo implementation of Communicator: TCP transport on 127.0.0.1 (override
// the interface address with BMSYS_GLOO_HOSTNAME), full-mesh rendezvous through a
// RendezvousStore, host memory only. Used by the CPU backend, and by any backend
// that does not supply its own communicator.
#pragma once

#include <memory>

#include "runtime/collectives/communicator.h"

namespace bmsys::rt {

std::shared_ptr<Communicator> make_gloo_communicator(const DistributedEnv& env,
                                                     std::shared_ptr<RendezvousStore> store);

}  // namespace bmsys::rt
