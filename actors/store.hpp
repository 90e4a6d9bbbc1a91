// The node's RocksDB database (DESIGN §5): one DB per node with the column families keys,
// tenants, ledger, audit, quota and meta. Used only from detached actors (accounts, ledger,
// audit_writer): every call may block on disk. Every rocksdb::Status is checked and returned
// as a store::status.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tc::actors {

class store {
 public:
  enum class family : uint8_t { keys, tenants, ledger, audit, quota, meta };

  /// The result of a call: ok, not_found (get only), or an error with RocksDB's message.
  struct status {
    enum class code : uint8_t { ok, not_found, io_error, corruption, invalid, busy, other };
    code value = code::ok;
    std::string message;
    bool ok() const { return value == code::ok; }
    bool not_found() const { return value == code::not_found; }
  };

  /// Writes applied atomically by write().
  class batch {
   public:
    batch();
    ~batch();
    batch(batch&&) noexcept;
    batch& operator=(batch&&) noexcept;
    void put(family f, std::string_view key, std::string_view value);
    void del(family f, std::string_view key);
    size_t count() const;

   private:
    friend class store;
    struct impl;
    std::unique_ptr<impl> impl_;
  };

  /// Opens (creating if missing) the DB at `path` with every column family; "" opens a private
  /// in-memory DB (same engine, nothing on disk, gone at close). `fsync`: writes
  /// return only once synced to disk (durability = "fsync"); else the WAL is written but not
  /// synced (durability = "process": survives kill -9, not power loss). Null + error on failure.
  static std::unique_ptr<store> open(const std::string& path, bool fsync, status& error);
  ~store();

  status put(family f, std::string_view key, std::string_view value);
  status del(family f, std::string_view key);
  /// not_found if absent.
  status get(family f, std::string_view key, std::string& value) const;
  /// One status per key, in order (ok or not_found or an error).
  std::vector<status> multi_get(family f, const std::vector<std::string>& keys,
                                std::vector<std::string>& values) const;
  status write(const batch& b);
  /// Writes `first` then `second` as one atomic batch.
  status write(const batch& first, const batch& second);
  /// Calls `visit(key, value)` for every key starting with `prefix`, in key order, until it
  /// returns false.
  status scan(family f, std::string_view prefix,
              const std::function<bool(std::string_view, std::string_view)>& visit) const;
  /// Calls `visit` for keys in [from, to), in key order, until it returns false.
  status scan_range(family f, std::string_view from, std::string_view to,
                    const std::function<bool(std::string_view, std::string_view)>& visit) const;
  /// The last key starting with `prefix` and its value (for resuming a sequence); not_found if
  /// there is none.
  status last(family f, std::string_view prefix, std::string& key, std::string& value) const;
  /// Forces the WAL to disk (used by fsync group commit and at shutdown).
  status sync_wal();
  /// Chaos testing (debug.fault_injection): while on, every write fails with io_error as a
  /// broken disk would. Any thread.
  void inject_write_faults(bool on);
  bool write_faults() const;
  const std::string& path() const;

 private:
  store();
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::actors
