// The ledger actor (actors/ledger.cpp): records sent to it are written in batches; answers held
// for a record are released once it is durable; records no answer waits for are counted down
// in the senders' records_behind once written.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/ledger.hpp"
#include "actors/ledger_book.hpp"
#include "actors/store.hpp"
#include "protocol/billing/usage.hpp"
#include "tests/support/actor_system.hpp"

using namespace tc;
using namespace tc::actors;
using tc::test::quiet_config;

namespace {

billing::usage_record usage(uint64_t i) {
  billing::usage_record u;
  u.request_id = "req-" + std::to_string(i);
  u.ts_ms = 1'700'000'000'000;
  u.tenant = "acme";
  u.model = "chat";
  u.provider = "sim";
  u.status = 200;
  u.prompt_tokens = 3;
  u.completion_tokens = 5;
  return u;
}

/// The answers the ledger released, in order.
struct released_log {
  std::mutex mutex;
  std::vector<reply_target> targets;
  size_t size() {
    std::lock_guard<std::mutex> g(mutex);
    return targets.size();
  }
};

}  // namespace

TEST_CASE("ledger: records no answer waits for are counted down once written, not before") {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  store::status st;
  std::shared_ptr<store> db = store::open("", false, st);
  REQUIRE_MESSAGE(db != nullptr, st.message);
  auto book = std::make_shared<ledger_book>(*db, st);
  REQUIRE(st.ok());
  auto released = std::make_shared<released_log>();
  auto hooks = std::make_shared<ledger_hooks>();
  hooks->on_durable = [released](const std::vector<reply_target>& held) {
    std::lock_guard<std::mutex> g(released->mutex);
    released->targets.insert(released->targets.end(), held.begin(), held.end());
  };
  hooks->records_behind = std::make_shared<std::atomic<int64_t>>(2);  // the two sends below
  caf::actor writer = sys.spawn<caf::detached>(ledger, db, book, hooks);

  db->inject_write_faults(true);
  self->send(writer, usage(1));
  self->send(writer, usage(2), reply_target{0, 2});  // waited for: never counted
  self->send(writer, usage(3));
  bool all_written = true;
  self->request(writer, std::chrono::seconds(10), ledger_sync_atom::value)
      .receive([&](bool ok) { all_written = ok; }, [&](caf::error&) { all_written = true; });
  CHECK_FALSE(all_written);
  CHECK(hooks->records_behind->load() == 2);  // kept, retried: still behind
  CHECK(released->size() == 0);

  db->inject_write_faults(false);
  self->request(writer, std::chrono::seconds(10), ledger_sync_atom::value)
      .receive([&](bool ok) { all_written = ok; }, [&](caf::error&) { all_written = false; });
  CHECK(all_written);
  CHECK(hooks->records_behind->load() == 0);
  REQUIRE(released->size() == 1);
  CHECK(released->targets[0].slot == 2);
  CHECK(book->appended() == 3);
  self->send_exit(writer, caf::exit_reason::user_shutdown);
}
