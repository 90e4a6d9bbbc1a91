// The audit_writer actor (issue 5, DESIGN §5): one hash-chained audit record per request into
// the node's store (family `audit`, key audit::record_key(node, seq)). Spawned detached (it
// blocks on RocksDB). Records that arrive while a write is in progress are chained and written
// together in the next batch (group commit). A failed write is retried with identical hashes,
// never dropped: nothing an auditor must see is lost. Answers held for their record
// (write-ahead) are released once it is durable. With the ledger's book it also writes the
// usage records sent along with audit records, in the same batch as them: a request's two
// records then cost one hand-off and one write, and its held answer waits for one release.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/ledger.hpp"
#include "actors/store.hpp"
#include "protocol/audit/record.hpp"
#include "protocol/messages.hpp"

namespace tc::actors {

using audit_flush_atom = caf::atom_constant<caf::atom("a_flush")>;
using audit_sync_atom = caf::atom_constant<caf::atom("a_sync")>;
using audit_verify_atom = caf::atom_constant<caf::atom("a_verify")>;
using audit_export_atom = caf::atom_constant<caf::atom("a_export")>;
using audit_search_atom = caf::atom_constant<caf::atom("a_search")>;
using audit_prune_atom = caf::atom_constant<caf::atom("a_prune")>;

/// How the node keeps its audit trail. Read once at spawn.
struct audit_settings {
  /// What request and response text is kept: none (digests only), clear, or sealed (SM4).
  enum class text_mode : uint8_t { none, clear, sealed };
  audit::hash_algo algo = audit::hash_algo::sha256;  ///< chain and text digests
  std::string node = "node-1";                       ///< this node's chain (key prefix)
  uint32_t retention_days = 0;                       ///< prune records older; 0 = keep forever
  text_mode text = text_mode::none;
  std::string sm4_key;  ///< 16 raw bytes; sealed mode without a valid key keeps no text
  /// Not implemented yet: the chain covers the text bytes, so dropping text would break it
  /// (needs record format v2). Records keep their text until retention_days prunes them.
  uint32_t text_retention_days = 0;
};

/// Meta-family key of a node's retention anchor: the first kept seq (8 bytes big endian)
/// followed by the 32-byte hash its record's prev_hash must equal.
std::string audit_anchor_key(std::string_view node);

/// What the node wants to hear from the audit writer. Called on the actor's thread.
struct audit_hooks {
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

/// The ledger's book and hooks, for the usage records that travel with audit records. The book
/// is shared with the ledger actor (it serializes its callers); the hooks are the ledger's:
/// these writes count as the ledger's in metrics and in the store's health.
struct audit_ledger {
  std::shared_ptr<ledger_book> book;
  std::shared_ptr<const ledger_hooks> hooks;
};

struct audit_writer_state {
  std::shared_ptr<store> db;
  std::shared_ptr<const audit_settings> settings;
  std::shared_ptr<const audit_hooks> hooks;
  uint64_t head_seq = 0;    ///< the last durable record's seq (0: none yet)
  std::string head_hash;    ///< ... and its hash (empty: 32 zero bytes)
  uint64_t anchor_seq = 1;  ///< the first record kept (retention moves it)
  std::string anchor_hash;  ///< the prev_hash that record must have (empty: zeros)
  bool resumed = false;     ///< head and anchor were read from the store (else nothing is written)
  std::string start_error;  ///< why the chain could not be resumed cleanly; empty if it could
  std::vector<audit::audit_record> pending;    ///< digested and sealed, not yet chained
  std::vector<reply_target> held;              ///< answers waiting for a record in `pending`
  std::shared_ptr<const audit_ledger> ledger;  ///< null: no usage record travels with a record
  std::vector<billing::usage_record> usage;    ///< written in the same batch as `pending`
  int64_t unwaited = 0;                        ///< messages in `pending` no answer waits for
  bool flush_queued = false;
  bool failing = false;        ///< the last write failed (retrying)
  uint64_t seal_failures = 0;  ///< records whose text could not be sealed (kept as digests)
  static inline const char* name = "audit_writer";
};

/// Messages:
///   audit_record                                   append it (no answer): the sender fills the
///        request fields and puts the plain texts in input_text/output_text, or (when the
///        writer keeps no text) may send a text's digest instead, made with settings.algo; the
///        writer sets node, the digests it was not sent, text mode, seq, prev_hash and hash
///   (audit_record, reply_target)                   append it, then on_durable(target)
///   (audit_record, usage_record)                   append it, and the usage record to the
///        ledger's book in the same batch (needs `ledger`; else the write fails and is retried)
///   (audit_record, usage_record, reply_target)     both, then on_durable(target) once
///   (audit_sync_atom) -> bool                      write what is pending now; true if all was
///   (audit_verify_atom) -> string                  walk the node's chain from the retention
///        anchor and compare its end with the writer's head; JSON
///        {"ok","node","algo","checked","first_seq","last_seq","head_seq","first_broken_seq",
///        "reason"}, last_seq = the last record verified good
///   (audit_export_atom, from_ms, to_ms, tenant, limit) -> string
///        JSON lines of the node's records with from_ms <= ts_ms < to_ms (to_ms 0: no end),
///        of `tenant` ("" = all), in seq order, at most `limit` (0 = no limit)
///   (audit_search_atom, request_id, tenant, limit) -> string
///        the same JSON lines for records of this request id (a full scan of the node's chain)
///   (audit_prune_atom, now_ms) -> uint64_t         delete records older than retention_days,
///        oldest first, moving the anchor in the same batch; stops at the first record that is
///        not older or does not verify (evidence is never pruned); returns how many went
/// Reads see every record sent before them (the mailbox keeps order and a read first writes
/// what is pending).
caf::behavior audit_writer(caf::stateful_actor<audit_writer_state>* self, std::shared_ptr<store> db,
                           std::shared_ptr<const audit_settings> settings,
                           std::shared_ptr<const audit_hooks> hooks,
                           std::shared_ptr<const audit_ledger> ledger);

}  // namespace tc::actors
