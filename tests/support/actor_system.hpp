// For tests that run actors: a CAF config with the project's message types and logging off, and
// a bounded poll for what an actor does asynchronously.
#pragma once

#include <chrono>
#include <thread>

#include <caf/all.hpp>

#include "protocol/messages.hpp"

namespace tc::test {

struct quiet_config : caf::actor_system_config {
  quiet_config() {
    tc::add_message_types(*this);
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

/// Polls `pred` every millisecond until it holds or 5 s pass; its last value.
template <class Pred>
bool poll_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

}  // namespace tc::test
