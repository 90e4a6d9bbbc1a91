// What tcbench's in-process benchmarks (pipeline, records) share: a quiet actor system with the
// project's message types, the node's default in-memory store with the ledger's book on it, and
// percentiles of their samples.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include "actors/ledger_book.hpp"
#include "actors/store.hpp"
#include "protocol/messages.hpp"

namespace tc::bench {

/// An actor system with `threads` scheduler threads that polls without sleeping and logs nothing.
struct quiet_config : caf::actor_system_config {
  explicit quiet_config(unsigned threads) {
    tc::add_message_types(*this);
    set("scheduler.max-threads", static_cast<size_t>(threads));
    set("work-stealing.moderate-poll-attempts", size_t{0});
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

/// An in-memory store (store.path "", the node's default) and the ledger's book on it.
struct memory_ledger {
  std::shared_ptr<actors::store> db;
  std::shared_ptr<actors::ledger_book> book;
};

/// Opens both; false (with the reason on stderr) if either fails.
inline bool open_memory_ledger(memory_ledger& out) {
  actors::store::status st;
  out.db = actors::store::open("", false, st);
  if (!out.db) {
    std::fprintf(stderr, "tcbench: store: %s\n", st.message.c_str());
    return false;
  }
  out.book = std::make_shared<actors::ledger_book>(*out.db, st);
  if (!st.ok()) {
    std::fprintf(stderr, "tcbench: ledger: %s\n", st.message.c_str());
    return false;
  }
  return true;
}

/// The `p`th percentile (0-100) of `v`, nearest rank; 0 for no samples.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

}  // namespace tc::bench
