// For actor tests of actors that make HTTP calls through an I/O loop (io_port::call): a port
// that records the side calls for the test to inspect and answer (a side_answer to reply_to).
#pragma once

#include <mutex>
#include <vector>

#include "actors/connection.hpp"

namespace tc::test {

/// An io_port that only takes side calls; every other method does nothing.
struct call_recorder final : actors::io_port {
  std::mutex mx;
  std::vector<actors::side_call> calls;
  void dispatch(upstream_plan&&) override {}
  void reject(reply_target, openai::api_error&&, const rate_headers&) override {}
  void serve(cached_reply&&) override {}
  void attach(reply_target, caf::actor, canonical::digest) override {}
  void follow(follow_chunk&&) override {}
  void release(reply_target) override {}
  void call(actors::side_call&& c) override {
    std::lock_guard<std::mutex> lock(mx);
    calls.push_back(std::move(c));
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mx);
    return calls.size();
  }
  actors::side_call at(size_t i) {
    std::lock_guard<std::mutex> lock(mx);
    return calls.at(i);
  }
};

}  // namespace tc::test
