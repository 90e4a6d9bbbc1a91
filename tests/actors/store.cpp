// The node's RocksDB store: column families kept apart, get/put/del, multi_get, atomic batches,
// prefix and range scans, persistence across reopen, and errors (bad path, double open).
#include <doctest/doctest.h>
#include <rocksdb/db.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "actors/store.hpp"
#include "tests/support/process.hpp"

namespace {

using tc::actors::store;
using family = store::family;
using code = store::status::code;

/// A fresh directory under /tmp (removed at scope exit) with the DB in its "db".
struct temp_dir : tc::test::temp_dir {
  std::string db() const { return path() + "/db"; }
};

std::unique_ptr<store> open_ok(const std::string& path, bool fsync = false) {
  store::status st;
  auto db = store::open(path, fsync, st);
  INFO(st.message);
  REQUIRE(st.ok());
  REQUIRE(db != nullptr);
  return db;
}

std::vector<std::pair<std::string, std::string>> scan_all(const store& db, family f,
                                                          std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto st = db.scan(f, prefix, [&](std::string_view k, std::string_view v) {
    out.emplace_back(k, v);
    return true;
  });
  REQUIRE(st.ok());
  return out;
}

}  // namespace

TEST_CASE("store: put, get, del, families are separate") {
  temp_dir dir;
  auto db = open_ok(dir.db());
  CHECK(db->path() == dir.db());

  std::string v = "stale";
  auto st = db->get(family::keys, "k1", v);
  CHECK(st.not_found());
  CHECK(st.value == code::not_found);
  CHECK_FALSE(st.ok());

  REQUIRE(db->put(family::keys, "k1", "v-keys").ok());
  REQUIRE(db->put(family::ledger, "k1", "v-ledger").ok());
  REQUIRE(db->get(family::keys, "k1", v).ok());
  CHECK(v == "v-keys");
  REQUIRE(db->get(family::ledger, "k1", v).ok());
  CHECK(v == "v-ledger");
  for (family f : {family::tenants, family::audit, family::quota, family::meta})
    CHECK(db->get(f, "k1", v).not_found());

  // Binary keys and values, including NULs.
  const std::string bk("a\0b", 3), bv("\0\xff\0", 3);
  REQUIRE(db->put(family::meta, bk, bv).ok());
  REQUIRE(db->get(family::meta, bk, v).ok());
  CHECK(v == bv);
  CHECK(db->get(family::meta, "a", v).not_found());

  REQUIRE(db->del(family::keys, "k1").ok());
  CHECK(db->get(family::keys, "k1", v).not_found());
  CHECK(db->get(family::ledger, "k1", v).ok());
  CHECK(db->del(family::keys, "never-there").ok());
  REQUIRE(db->sync_wal().ok());
}

TEST_CASE("store: multi_get answers per key, in order") {
  temp_dir dir;
  auto db = open_ok(dir.db());
  REQUIRE(db->put(family::ledger, "a", "1").ok());
  REQUIRE(db->put(family::ledger, "c", "3").ok());
  REQUIRE(db->put(family::audit, "b", "other family").ok());
  std::vector<std::string> values = {"junk"};
  auto st = db->multi_get(family::ledger, {"c", "b", "a", "c", "zz"}, values);
  REQUIRE(st.size() == 5);
  REQUIRE(values.size() == 5);
  CHECK(st[0].ok());
  CHECK(values[0] == "3");
  CHECK(st[1].not_found());
  CHECK(values[1].empty());
  CHECK(st[2].ok());
  CHECK(values[2] == "1");
  CHECK(st[3].ok());
  CHECK(values[3] == "3");
  CHECK(st[4].not_found());

  st = db->multi_get(family::ledger, {}, values);
  CHECK(st.empty());
  CHECK(values.empty());

  // Reopened, the rows come from a table file (recovery flushes the log), not the memtable.
  db.reset();
  db = open_ok(dir.db());
  REQUIRE(db->put(family::ledger, "b", "2").ok());  // and one from the memtable
  st = db->multi_get(family::ledger, {"zz", "c", "b", "a"}, values);
  REQUIRE(st.size() == 4);
  REQUIRE(values.size() == 4);
  CHECK(st[0].not_found());
  CHECK(values[0].empty());
  CHECK(st[1].ok());
  CHECK(values[1] == "3");
  CHECK(st[2].ok());
  CHECK(values[2] == "2");
  CHECK(st[3].ok());
  CHECK(values[3] == "1");
}

TEST_CASE("store: batches apply atomically across families") {
  temp_dir dir;
  auto db = open_ok(dir.db());
  REQUIRE(db->put(family::quota, "gone", "x").ok());
  store::batch b;
  CHECK(b.count() == 0);
  CHECK(db->write(b).ok());  // empty batch is fine
  b.put(family::ledger, "r/1", "one");
  b.put(family::audit, "n/1", "audit");
  b.del(family::quota, "gone");
  b.put(family::ledger, "r/1", "one-again");  // later op wins
  CHECK(b.count() == 4);
  REQUIRE(db->write(b).ok());
  CHECK(b.count() == 4);  // left as it was
  std::string v;
  REQUIRE(db->get(family::ledger, "r/1", v).ok());
  CHECK(v == "one-again");
  REQUIRE(db->get(family::audit, "n/1", v).ok());
  CHECK(v == "audit");
  CHECK(db->get(family::quota, "gone", v).not_found());

  store::batch moved = std::move(b);
  CHECK(moved.count() == 4);
  store::batch c;
  c = std::move(moved);
  CHECK(c.count() == 4);
  b.put(family::meta, "reused", "ok");  // a moved-from batch can be used again
  CHECK(b.count() == 1);
  REQUIRE(db->write(b).ok());
  REQUIRE(db->get(family::meta, "reused", v).ok());
}

TEST_CASE("store: prefix scan and range scan stop where they should") {
  temp_dir dir;
  auto db = open_ok(dir.db());
  for (const char* k : {"a/1", "a/2", "a/3", "a0", "b/1", "a", "a/\xff"})
    REQUIRE(db->put(family::ledger, k, std::string("v") + k).ok());
  REQUIRE(db->put(family::audit, "a/9", "other family").ok());

  auto rows = scan_all(*db, family::ledger, "a/");
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].first == "a/1");
  CHECK(rows[0].second == "va/1");
  CHECK(rows[1].first == "a/2");
  CHECK(rows[2].first == "a/3");
  CHECK(rows[3].first == "a/\xff");
  CHECK(scan_all(*db, family::ledger, "").size() == 7);
  CHECK(scan_all(*db, family::ledger, "c").empty());
  CHECK(scan_all(*db, family::keys, "").empty());

  // visit returning false stops the scan.
  int seen = 0;
  REQUIRE(db->scan(family::ledger, "a/", [&](std::string_view, std::string_view) {
              return ++seen < 2;
            }).ok());
  CHECK(seen == 2);

  std::vector<std::string> keys;
  const auto collect = [&](std::string_view k, std::string_view) {
    keys.emplace_back(k);
    return true;
  };
  REQUIRE(db->scan_range(family::ledger, "a/2", "a0", collect).ok());
  CHECK(keys == std::vector<std::string>{"a/2", "a/3", "a/\xff"});
  keys.clear();
  REQUIRE(db->scan_range(family::ledger, "a/1", "a/3", collect).ok());
  CHECK(keys == std::vector<std::string>{"a/1", "a/2"});
  keys.clear();
  REQUIRE(db->scan_range(family::ledger, "a/3", "a/3", collect).ok());
  CHECK(keys.empty());
  REQUIRE(db->scan_range(family::ledger, "b", "a", collect).ok());
  CHECK(keys.empty());
  REQUIRE(db->scan_range(family::ledger, "", "\xff", collect).ok());
  CHECK(keys.size() == 7);
  seen = 0;
  REQUIRE(db->scan_range(family::ledger, "", "z", [&](std::string_view, std::string_view) {
              return ++seen < 3;
            }).ok());
  CHECK(seen == 3);
}

TEST_CASE("store: data survives close and reopen, with fsync on") {
  temp_dir dir;
  {
    auto db = open_ok(dir.db(), true);
    REQUIRE(db->put(family::tenants, "acme", "{}").ok());
    store::batch b;
    for (int i = 0; i < 100; ++i) b.put(family::ledger, "r/" + std::to_string(i), "x");
    REQUIRE(db->write(b).ok());
  }
  auto db = open_ok(dir.db());
  std::string v;
  REQUIRE(db->get(family::tenants, "acme", v).ok());
  CHECK(v == "{}");
  CHECK(scan_all(*db, family::ledger, "r/").size() == 100);
}

TEST_CASE("store: open errors are reported, never a crash") {
  temp_dir dir;
  SUBCASE("a regular file where the DB should be") {
    const std::string file = dir.path() + "/file";
    { std::ofstream(file) << "not a database"; }
    store::status st;
    auto db = store::open(file, false, st);
    CHECK(db == nullptr);
    CHECK_FALSE(st.ok());
    CHECK(st.value == code::io_error);
    CHECK_FALSE(st.message.empty());
  }
  SUBCASE("a path under a regular file") {
    const std::string file = dir.path() + "/file";
    { std::ofstream(file) << "x"; }
    store::status st;
    auto db = store::open(file + "/db", false, st);
    CHECK(db == nullptr);
    CHECK_FALSE(st.ok());
    CHECK_FALSE(st.message.empty());
  }
  SUBCASE("a second open of the same path in this process") {
    auto first = open_ok(dir.db());
    REQUIRE(first->put(family::meta, "k", "v").ok());
    store::status st;
    auto second = store::open(dir.db(), false, st);
    CHECK(second == nullptr);
    CHECK_FALSE(st.ok());
    CHECK(st.value == code::io_error);
    CHECK(st.message.find("lock") != std::string::npos);
    // The first instance is unharmed.
    std::string v;
    REQUIRE(first->get(family::meta, "k", v).ok());
    CHECK(v == "v");
    first.reset();
    auto third = open_ok(dir.db());  // the lock is released on close
    REQUIRE(third->get(family::meta, "k", v).ok());
  }
}

TEST_CASE("store: a DB with an extra column family still opens") {
  temp_dir dir;
  {
    auto db = open_ok(dir.db());
    REQUIRE(db->put(family::meta, "k", "v").ok());
  }
  // Add a family this build does not know, the way a newer build would.
  {
    rocksdb::Options options;
    std::vector<std::string> names;
    REQUIRE(rocksdb::DB::ListColumnFamilies(options, dir.db(), &names).ok());
    CHECK(names.size() == 7);
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (auto& n : names) descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, dir.db(), descriptors, &handles, &raw).ok());
    rocksdb::ColumnFamilyHandle* extra = nullptr;
    REQUIRE(raw->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "future", &extra).ok());
    handles.push_back(extra);
    for (auto* h : handles) REQUIRE(raw->DestroyColumnFamilyHandle(h).ok());
    REQUIRE(raw->Close().ok());
    delete raw;
  }
  auto db = open_ok(dir.db());
  std::string v;
  REQUIRE(db->get(family::meta, "k", v).ok());
  CHECK(v == "v");
}
