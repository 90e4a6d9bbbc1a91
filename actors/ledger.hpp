// The ledger actor: one usage record per request into the node's store, on every outcome
// (DESIGN §2 step 13, §5). Spawned detached (it blocks on RocksDB). Records that arrive while a
// write is in progress are written together in the next batch (group commit). A failed write
// is retried, never dropped: nothing a client was charged for is lost. Answers held for their
// record (write-ahead) are released once it is durable. With an audit trail the node sends the
// usage records of requests to the audit writer instead, which appends them to the same
// ledger_book in its own batches: this actor then writes only what is sent to it directly, and
// answers the reports.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/ledger_book.hpp"
#include "protocol/messages.hpp"

namespace tc::actors {

using ledger_flush_atom = caf::atom_constant<caf::atom("l_flush")>;
using ledger_report_atom = caf::atom_constant<caf::atom("l_report")>;
using ledger_records_atom = caf::atom_constant<caf::atom("l_records")>;
using ledger_sync_atom = caf::atom_constant<caf::atom("l_sync")>;

/// What the node wants to hear from the ledger. Called on the actor's thread.
struct ledger_hooks {
  std::function<void(size_t records)> on_written;
  std::function<void(const std::string& error, size_t pending)> on_write_failed;
  /// The records of these held answers are durable (or can never be written): release them.
  std::function<void(const std::vector<reply_target>& held)> on_durable;
  /// store.fail_mode = "open": a failed write releases the held answers at once (their records
  /// stay pending and are retried); "closed" holds them until the write succeeds.
  bool release_on_failure = false;
  /// The senders' count of messages that no answer waits for (account_plan::records_behind):
  /// counted down once such a message's records are written (or refused for good). May be null.
  std::shared_ptr<std::atomic<int64_t>> records_behind;
};

/// A writer's pending records are written (or refused for good): its `unwaited` messages, those
/// no answer waited for, leave the senders' count `behind` (may be null). The ledger and the
/// audit writer both call it.
inline void count_down(const std::shared_ptr<std::atomic<int64_t>>& behind, int64_t& unwaited) {
  if (unwaited != 0 && behind) behind->fetch_sub(unwaited, std::memory_order_relaxed);
  unwaited = 0;
}

struct ledger_state {
  std::shared_ptr<store> db;  ///< outlives `book`, which refers to it
  std::shared_ptr<ledger_book> book;
  std::vector<billing::usage_record> pending;
  std::vector<reply_target> held;  ///< answers waiting for a record in `pending`
  int64_t unwaited = 0;            ///< messages in `pending` that no answer waits for
  bool flush_queued = false;
  bool failing = false;  ///< the last write failed (retrying)
  std::shared_ptr<const ledger_hooks> hooks;
  static inline const char* name = "ledger";
};

/// Messages:
///   usage_record                                   record it (no answer)
///   (usage_record, reply_target)                   record it, then on_durable(target): the
///        write-ahead of an answer whose last bytes the I/O loop holds
///   (ledger_sync_atom) -> bool                     write what is pending now; true if all was
///   (ledger_report_atom, from_day, to_day, tenant, project, key, group_by, format) -> string
///        a usage report; group_by is a comma list of dimension names; format json | csv
///   (ledger_records_atom, from_day, to_day, tenant, limit, format) -> string
///        the records themselves, as a JSON list or CSV
/// Reports see every record sent to this actor before the report was asked (the mailbox keeps
/// order and a report first writes what is pending), and every record the audit writer has
/// written: with write-ahead, so every record of an answer a client has received.
caf::behavior ledger(caf::stateful_actor<ledger_state>* self, std::shared_ptr<store> db,
                     std::shared_ptr<ledger_book> book, std::shared_ptr<const ledger_hooks> hooks);

}  // namespace tc::actors
