// The admin port's server (node/admin.cpp): start and stop, however close together.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <thread>

#include "node/admin.hpp"
#include "node/metrics.hpp"

using namespace tc;

TEST_CASE("an admin server stopped right after it starts ends its thread") {
  // cpp-httplib's stop() does nothing until the serving thread has entered its accept loop; a
  // node told to stop at that moment (SIGTERM just after its ready line) waited forever.
  std::promise<int> done;
  std::future<int> finished = done.get_future();
  std::thread([done = std::move(done)]() mutable {
    node::metrics m;
    int rounds = 0;
    for (; rounds < 300; ++rounds) {
      node::admin_server admin(m);
      if (admin.bind("127.0.0.1", 0) <= 0) break;
      admin.start();
      admin.stop();
    }
    done.set_value(rounds);
  }).detach();
  // A hang leaves the thread behind, blocked: the case fails instead of timing out.
  REQUIRE(finished.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  CHECK(finished.get() == 300);
}
