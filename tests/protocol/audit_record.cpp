// protocol/audit/record.cpp: digests (known vectors), canonical bytes, the stored format (strict
// decode), keys, the chain (resume = never stopped), the verifier (every single-byte flip,
// deletion, reordering, truncation, node mismatch, wrong algorithm, anchors) and SM4 sealing.
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "protocol/audit/record.hpp"

namespace {

using namespace tc::audit;
using namespace std::string_literals;

struct stored {
  std::string key;
  std::string value;
};

audit_record sample(hash_algo algo, int i, std::string node = "node-a") {
  audit_record r;
  r.node = std::move(node);
  r.request_id = "req-" + std::to_string(i);
  r.ts_ms = 1795305600000 + i * 37;
  r.tenant = "acme";
  r.project = "web";
  r.key_id = "key_0123";
  r.model = "Qwen/Qwen2.5-7B";
  r.provider = "sim";
  r.endpoint = "chat";
  r.status = i % 3 == 0 ? 403 : 200;
  r.prompt_tokens = 10 + i;
  r.completion_tokens = 20 + i;
  r.cost_micros = -5 + i;
  r.cost_currency = "CNY";
  r.latency_ms = 120;
  r.input_verdicts = {{"keywords", "allow", "", 12}, {"pii", "mask", "phone", 40}};
  r.output_verdicts = {{"http", i % 2 ? "flag" : "allow", i % 2 ? "violence" : "", 900}};
  const std::string in = "prompt " + std::to_string(i) + ": tell me about audit trails";
  const std::string out = "answer " + std::to_string(i);
  r.input_digest = digest(algo, in);
  r.output_digest = digest(algo, out);
  r.text_encrypted = false;
  r.input_text = in;
  r.output_text = out;
  return r;
}

std::vector<stored> build(hash_algo algo, int n, std::vector<audit_record>* records = nullptr) {
  chain c(algo);
  std::vector<stored> out;
  for (int i = 1; i <= n; ++i) {
    audit_record r = sample(algo, i);
    c.append(r);
    out.push_back({record_key(r.node, r.seq), encode(r)});
    if (records != nullptr) records->push_back(r);
  }
  return out;
}

/// Feeds every pair; returns the verifier.
verifier verify(hash_algo algo, const std::vector<stored>& pairs, uint64_t first_seq = 1,
                std::string anchor = {}) {
  verifier v(algo, first_seq, std::move(anchor));
  for (const stored& s : pairs) v.feed(s.key, s.value);
  return v;
}

std::string unhex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

const std::string kKey = unhex("0123456789abcdeffedcba9876543210");

}  // namespace

TEST_CASE("hash algorithm names round trip and unknown names are rejected") {
  for (hash_algo a : {hash_algo::sha256, hash_algo::sm3}) {
    hash_algo parsed = a == hash_algo::sm3 ? hash_algo::sha256 : hash_algo::sm3;
    CHECK(parse_hash_algo(hash_algo_name(a), parsed));
    CHECK(parsed == a);
  }
  CHECK(hash_algo_name(hash_algo::sha256) == "sha256");
  CHECK(hash_algo_name(hash_algo::sm3) == "sm3");
  hash_algo out = hash_algo::sm3;
  for (const char* bad : {"", "SM3", "sha-256", "sha512", "sm3 ", "md5"}) {
    CHECK_FALSE(parse_hash_algo(bad, out));
  }
  CHECK(out == hash_algo::sm3);
}

TEST_CASE("recent_digest: what digest() gives, for each algorithm and input, again or not") {
  std::string big(5000, 'x');  // over the memo's 4 KB: never kept, still digested
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    for (hash_algo a : {hash_algo::sha256, hash_algo::sm3}) {
      for (std::string_view in : {std::string_view("abc"), std::string_view("abd"),
                                  std::string_view(""), std::string_view(big)})
        CHECK(recent_digest(a, in) == digest(a, in));
    }
    big[round] = 'y';  // the same size, other bytes
  }
  // Inputs that share a memo slot replace each other and stay right.
  for (int i = 0; i < 300; ++i) {
    const std::string in = "body " + std::to_string(i % 150);
    REQUIRE(recent_digest(hash_algo::sha256, in) == digest(hash_algo::sha256, in));
  }
  CHECK(recent_digest(static_cast<hash_algo>(9), "abc").empty());
}

TEST_CASE("digests match the published test vectors") {
  CHECK(to_hex(digest(hash_algo::sm3, "abc")) ==
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
  CHECK(to_hex(digest(hash_algo::sha256, "abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // GB/T 32905-2016 example 2: "abcd" x 16.
  std::string abcd;
  for (int i = 0; i < 16; ++i) abcd += "abcd";
  CHECK(to_hex(digest(hash_algo::sm3, abcd)) ==
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732");
  CHECK(to_hex(digest(hash_algo::sha256, "")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(to_hex(digest(hash_algo::sm3, "")) ==
        "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b");
  // Alternating algorithms on one thread reuses per-algorithm contexts correctly.
  for (int i = 0; i < 3; ++i) {
    CHECK(digest(hash_algo::sm3, "abc").size() == 32);
    CHECK(digest(hash_algo::sha256, "abc").size() == 32);
    CHECK(digest(hash_algo::sm3, "abc") != digest(hash_algo::sha256, "abc"));
  }
  CHECK(digest(static_cast<hash_algo>(9), "abc").empty());
}

TEST_CASE("digests agree across threads") {
  const std::string want_sm3 = digest(hash_algo::sm3, "payload");
  const std::string want_sha = digest(hash_algo::sha256, "payload");
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (digest(hash_algo::sm3, "payload") != want_sm3) ++mismatches[t];
        if (digest(hash_algo::sha256, "payload") != want_sha) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) CHECK(m == 0);
}

TEST_CASE("to_hex is lower case and covers every byte value") {
  CHECK(to_hex("") == "");
  CHECK(to_hex(std::string("\x00\xff\x0a\xAB", 4)) == "00ff0aab");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string hex = to_hex(all);
  REQUIRE(hex.size() == 512);
  CHECK(unhex(hex) == all);
  CHECK(std::none_of(hex.begin(), hex.end(), [](char c) { return c >= 'A' && c <= 'F'; }));
}

TEST_CASE("canonical bytes: deterministic, tagged, every field but hash counts") {
  const audit_record base = sample(hash_algo::sm3, 7);
  const std::string bytes = canonical_bytes(base);
  CHECK(bytes == canonical_bytes(audit_record(base)));
  CHECK(bytes.rfind("tc.audit.v1", 0) == 0);

  audit_record with_hash = base;
  with_hash.hash = std::string(32, 'h');
  CHECK(canonical_bytes(with_hash) == bytes);

  const std::vector<std::function<void(audit_record&)>> mutations = {
      [](audit_record& r) { r.seq += 1; },
      [](audit_record& r) { r.node += "x"; },
      [](audit_record& r) { r.request_id += "x"; },
      [](audit_record& r) { r.ts_ms += 1; },
      [](audit_record& r) { r.tenant += "x"; },
      [](audit_record& r) { r.project += "x"; },
      [](audit_record& r) { r.key_id += "x"; },
      [](audit_record& r) { r.model += "x"; },
      [](audit_record& r) { r.provider += "x"; },
      [](audit_record& r) { r.endpoint += "x"; },
      [](audit_record& r) { r.status = -r.status; },
      [](audit_record& r) { r.prompt_tokens += 1; },
      [](audit_record& r) { r.completion_tokens += 1; },
      [](audit_record& r) { r.cost_micros -= 1; },
      [](audit_record& r) { r.cost_currency = "USD"; },
      [](audit_record& r) { r.latency_ms += 1; },
      [](audit_record& r) { r.input_verdicts.pop_back(); },
      [](audit_record& r) { r.input_verdicts[0].engine += "x"; },
      [](audit_record& r) { r.input_verdicts[0].verdict = "block"; },
      [](audit_record& r) { r.input_verdicts[1].category.clear(); },
      [](audit_record& r) { r.input_verdicts[1].latency_us += 1; },
      [](audit_record& r) { r.output_verdicts.push_back({}); },
      [](audit_record& r) { std::swap(r.input_verdicts, r.output_verdicts); },
      [](audit_record& r) { r.input_digest[0] ^= 1; },
      [](audit_record& r) { r.output_digest.clear(); },
      [](audit_record& r) { r.text_encrypted = true; },
      [](audit_record& r) { r.input_text.clear(); },
      [](audit_record& r) { r.output_text += "!"; },
      [](audit_record& r) { r.prev_hash = std::string(32, '\0'); },
  };
  std::set<std::string> seen{bytes};
  for (std::size_t i = 0; i < mutations.size(); ++i) {
    audit_record r = base;
    mutations[i](r);
    CAPTURE(i);
    CHECK(seen.insert(canonical_bytes(r)).second);
  }

  // Moving a boundary between adjacent strings changes the bytes (length prefixes).
  audit_record a = base, b = base;
  a.tenant = "ab";
  a.project = "c";
  b.tenant = "a";
  b.project = "bc";
  CHECK(canonical_bytes(a) != canonical_bytes(b));
  // So does moving a verdict from one direction to the other.
  audit_record c = base, d = base;
  c.input_verdicts.clear();
  c.output_verdicts = {{"x", "allow", "", 1}, {"y", "allow", "", 1}};
  d.input_verdicts = {{"x", "allow", "", 1}};
  d.output_verdicts = {{"y", "allow", "", 1}};
  CHECK(canonical_bytes(c) != canonical_bytes(d));
}

TEST_CASE("encode/decode round trips, including an empty record and binary text") {
  audit_record full = sample(hash_algo::sha256, 3);
  full.prev_hash = std::string(32, '\x11');
  full.hash = std::string(32, '\x22');
  full.text_encrypted = true;
  full.input_text = std::string("\x00\x01\xff", 3);
  full.ts_ms = -1;
  full.status = -7;
  for (const audit_record& r : {audit_record{}, full}) {
    const std::string bytes = encode(r);
    CHECK(bytes[0] == '\x01');
    audit_record back;
    back.node = "junk";
    REQUIRE(decode(bytes, back));
    CHECK(back == r);
    CHECK(encode(back) == bytes);
  }
}

TEST_CASE("decode rejects truncation, trailing bytes, bad versions, bad bools, bad lengths") {
  audit_record r = sample(hash_algo::sm3, 4);
  chain(hash_algo::sm3).append(r);
  const std::string bytes = encode(r);
  const audit_record untouched = sample(hash_algo::sm3, 99);

  for (std::size_t n = 0; n < bytes.size(); ++n) {
    audit_record out = untouched;
    CAPTURE(n);
    CHECK_FALSE(decode(std::string_view(bytes).substr(0, n), out));
    CHECK(out == untouched);
  }
  audit_record out;
  CHECK_FALSE(decode(bytes + '\0', out));
  for (char version : {'\x00', '\x02', '\xff'}) {
    std::string b = bytes;
    b[0] = version;
    CHECK_FALSE(decode(b, out));
  }
  std::string bad_tag = bytes;
  bad_tag[1] = 'T';
  CHECK_FALSE(decode(bad_tag, out));

  // text_encrypted sits right after output_digest: find it by encoding both bool values.
  audit_record t = r;
  t.text_encrypted = true;
  const std::string bytes_true = encode(t);
  std::size_t bool_at = 0;
  while (bool_at < bytes.size() && bytes[bool_at] == bytes_true[bool_at]) ++bool_at;
  REQUIRE(bool_at < bytes.size());
  for (char v : {'\x02', '\x80', '\xff'}) {
    std::string b = bytes;
    b[bool_at] = v;
    CHECK_FALSE(decode(b, out));
  }

  // node's length sits after the version byte, the 11-byte tag and the 8-byte seq.
  constexpr std::size_t node_len_at = 1 + 11 + 8;
  REQUIRE(bytes.substr(node_len_at, 4) == std::string("\x06\x00\x00\x00", 4));
  std::string huge = bytes;
  huge.replace(node_len_at, 4, std::string("\xfe\xff\xff\xff", 4));
  CHECK_FALSE(decode(huge, out));
  // The long form for a short length is not what encode() writes.
  std::string long_form = bytes;
  long_form.replace(node_len_at, 4, std::string("\xff\xff\xff\xff\x06\0\0\0\0\0\0\0", 12));
  CHECK_FALSE(decode(long_form, out));
  std::string long_huge = bytes;
  long_huge.replace(node_len_at, 4, std::string(12, '\xff'));
  CHECK_FALSE(decode(long_huge, out));
}

TEST_CASE("decode never accepts a mutation that encode() would not write back") {
  std::mt19937 rng(12345);
  audit_record r = sample(hash_algo::sm3, 5);
  chain(hash_algo::sm3).append(r);
  const std::string bytes = encode(r);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string b = bytes;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % b.size();
      switch (rng() % 3) {
        case 0:
          b[at] = static_cast<char>(rng());
          break;
        case 1:
          b.erase(at, 1 + rng() % 8);
          break;
        default:
          b.insert(at, 1 + rng() % 4, static_cast<char>(rng()));
      }
      if (b.empty()) break;
    }
    audit_record out;
    if (decode(b, out)) {
      ++accepted;
      CHECK(encode(out) == b);
    }
  }
  CHECK(accepted < 3000);
}

TEST_CASE("record keys sort by seq and parse back, anything else is rejected") {
  const std::string k = record_key("node-a", 0x0102030405060708ULL);
  CHECK(k == std::string("node-a\0\x01\x02\x03\x04\x05\x06\x07\x08", 15));
  std::string node;
  uint64_t seq = 0;
  REQUIRE(parse_record_key(k, node, seq));
  CHECK(node == "node-a");
  CHECK(seq == 0x0102030405060708ULL);
  REQUIRE(parse_record_key(record_key("", 1), node, seq));
  CHECK(node.empty());
  CHECK(seq == 1);

  CHECK(record_key("n", 255) < record_key("n", 256));
  CHECK(record_key("n", 9) < record_key("n", 10));
  CHECK(record_key("n", UINT64_MAX - 1) < record_key("n", UINT64_MAX));
  // A node's keys all sort before those of a node it is a prefix of.
  CHECK(record_key("n", UINT64_MAX) < record_key("n2", 0));

  node = "kept";
  seq = 77;
  for (const std::string& bad :
       {std::string(), std::string("short"), std::string(8, '\0'), k.substr(0, k.size() - 1),
        k + "x", std::string("no-sep\x01") + k.substr(7), record_key(std::string("a\0b", 3), 1)}) {
    CHECK_FALSE(parse_record_key(bad, node, seq));
  }
  CHECK(node == "kept");
  CHECK(seq == 77);
}

TEST_CASE("chain: genesis, linking, and resuming is the same as never stopping") {
  for (hash_algo algo : {hash_algo::sha256, hash_algo::sm3}) {
    CAPTURE(hash_algo_name(algo));
    std::vector<audit_record> one;
    chain c(algo);
    CHECK(c.last_seq() == 0);
    CHECK(c.last_hash() == std::string(32, '\0'));
    CHECK(c.algo() == algo);
    for (int i = 1; i <= 10; ++i) {
      audit_record r = sample(algo, i);
      r.seq = 999;  // overwritten
      c.append(r);
      CHECK(r.seq == static_cast<uint64_t>(i));
      CHECK(r.prev_hash == (i == 1 ? std::string(32, '\0') : one.back().hash));
      CHECK(r.hash == digest(algo, r.prev_hash + canonical_bytes(r)));
      one.push_back(r);
    }
    CHECK(c.last_seq() == 10);
    CHECK(c.last_hash() == one.back().hash);

    std::vector<audit_record> two;
    chain first(algo);
    for (int i = 1; i <= 5; ++i) {
      audit_record r = sample(algo, i);
      first.append(r);
      two.push_back(r);
    }
    chain resumed(algo, first.last_seq(), first.last_hash());
    for (int i = 6; i <= 10; ++i) {
      audit_record r = sample(algo, i);
      resumed.append(r);
      two.push_back(r);
    }
    REQUIRE(two.size() == one.size());
    for (std::size_t i = 0; i < one.size(); ++i) CHECK(two[i] == one[i]);
    CHECK(resumed.last_hash() == c.last_hash());
  }
  audit_record a = sample(hash_algo::sm3, 1), b = sample(hash_algo::sm3, 1);
  chain(hash_algo::sm3).append(a);
  chain(hash_algo::sha256).append(b);
  CHECK(a.hash != b.hash);
}

TEST_CASE("verifier accepts an intact chain with either algorithm") {
  for (hash_algo algo : {hash_algo::sha256, hash_algo::sm3}) {
    CAPTURE(hash_algo_name(algo));
    std::vector<audit_record> records;
    const auto pairs = build(algo, 20, &records);
    const verifier v = verify(algo, pairs);
    CHECK(v.ok());
    CHECK(v.checked() == 20);
    CHECK(v.first_broken_seq() == 0);
    CHECK(v.reason().empty());
    CHECK(v.last_hash() == records.back().hash);
  }
  verifier empty(hash_algo::sm3);
  CHECK(empty.ok());
  CHECK(empty.checked() == 0);
}

TEST_CASE("verifier finds every single-byte flip at the flipped record") {
  const auto pairs = build(hash_algo::sm3, 20);
  for (std::size_t k : {0u, 9u, 19u}) {
    const std::string& value = pairs[k].value;
    for (std::size_t at = 0; at < value.size(); ++at) {
      for (char mask : {'\x01', '\x80'}) {
        auto tampered = pairs;
        tampered[k].value[at] ^= mask;
        const verifier v = verify(hash_algo::sm3, tampered);
        if (v.ok() || v.first_broken_seq() != k + 1 || v.checked() != k) {
          FAIL_CHECK("flip not caught: record "
                     << k + 1 << " byte " << at << " mask " << int(static_cast<uint8_t>(mask))
                     << " -> ok=" << v.ok() << " broken=" << v.first_broken_seq()
                     << " reason=" << v.reason());
        }
      }
    }
  }
  // A SHA-256 chain too, for one record.
  const auto sha = build(hash_algo::sha256, 5);
  for (std::size_t at = 0; at < sha[2].value.size(); ++at) {
    auto tampered = sha;
    tampered[2].value[at] ^= '\x01';
    const verifier v = verify(hash_algo::sha256, tampered);
    if (v.ok() || v.first_broken_seq() != 3) FAIL_CHECK("sha256 flip not caught at byte " << at);
  }
}

TEST_CASE("verifier: deletion, reordering, truncation, duplicates, foreign nodes") {
  const hash_algo algo = hash_algo::sm3;
  const auto pairs = build(algo, 20);

  SUBCASE("deleting record k is reported at k") {
    for (std::size_t k = 1; k < 20; ++k) {  // the last record's deletion needs the writer's seq
      auto t = pairs;
      t.erase(t.begin() + static_cast<long>(k - 1));
      const verifier v = verify(algo, t);
      CAPTURE(k);
      CHECK_FALSE(v.ok());
      CHECK(v.first_broken_seq() == k);
      CHECK(v.checked() == k - 1);
      CHECK_FALSE(v.reason().empty());
    }
  }
  SUBCASE("swapping the values of k and k+1 is reported at k") {
    for (std::size_t k = 1; k < 20; ++k) {
      auto t = pairs;
      std::swap(t[k - 1].value, t[k].value);
      const verifier v = verify(algo, t);
      CAPTURE(k);
      CHECK(v.first_broken_seq() == k);
    }
  }
  SUBCASE("swapping whole pairs (keys out of order) is reported at k") {
    auto t = pairs;
    std::swap(t[4], t[5]);
    CHECK(verify(algo, t).first_broken_seq() == 5);
  }
  SUBCASE("a truncated value") {
    auto t = pairs;
    t[7].value.resize(t[7].value.size() - 1);
    CHECK(verify(algo, t).first_broken_seq() == 8);
    t = pairs;
    t[7].value.clear();
    CHECK(verify(algo, t).first_broken_seq() == 8);
  }
  SUBCASE("a duplicated record") {
    auto t = pairs;
    t.insert(t.begin() + 3, t[3]);
    const verifier v = verify(algo, t);
    CHECK(v.first_broken_seq() == 5);
    CHECK(v.checked() == 4);
  }
  SUBCASE("a record whose node differs from its key") {
    // Re-chained from scratch so its hashes are right: only the node/key mismatch is wrong.
    chain c(algo);
    std::vector<stored> t;
    for (int i = 1; i <= 5; ++i) {
      audit_record r = sample(algo, i, i == 3 ? "node-b" : "node-a");
      c.append(r);
      t.push_back({record_key("node-a", r.seq), encode(r)});
    }
    const verifier v = verify(algo, t);
    CHECK(v.first_broken_seq() == 3);
    CHECK(v.checked() == 2);
  }
  SUBCASE("a key of another node in the middle") {
    auto t = pairs;
    t[6].key = record_key("node-b", 7);
    CHECK(verify(algo, t).first_broken_seq() == 7);
  }
  SUBCASE("a malformed key") {
    auto t = pairs;
    t[2].key = "garbage";
    CHECK(verify(algo, t).first_broken_seq() == 3);
  }
  SUBCASE("a record re-hashed after editing breaks the next link") {
    std::vector<audit_record> records;
    auto t = build(algo, 20, &records);
    audit_record r = records[9];
    r.status = 200 + (r.status == 200);
    r.hash = digest(algo, r.prev_hash + canonical_bytes(r));  // a forger recomputes the hash
    t[9].value = encode(r);
    const verifier v = verify(algo, t);
    CHECK(v.first_broken_seq() == 11);
    CHECK(v.checked() == 10);
  }
  SUBCASE("after breaking, the verifier stays broken") {
    auto t = pairs;
    t[1].value[40] ^= 1;
    verifier v(algo);
    CHECK(v.feed(t[0].key, t[0].value));
    CHECK_FALSE(v.feed(t[1].key, t[1].value));
    const std::string reason = v.reason();
    CHECK_FALSE(v.feed(t[2].key, t[2].value));
    CHECK_FALSE(v.feed(pairs[1].key, pairs[1].value));
    CHECK(v.first_broken_seq() == 2);
    CHECK(v.checked() == 1);
    CHECK(v.reason() == reason);
  }
}

TEST_CASE("verifier with the wrong algorithm fails at the first record") {
  const verifier v = verify(hash_algo::sm3, build(hash_algo::sha256, 20));
  CHECK_FALSE(v.ok());
  CHECK(v.first_broken_seq() == 1);
  CHECK(v.checked() == 0);
  CHECK(verify(hash_algo::sha256, build(hash_algo::sm3, 3)).first_broken_seq() == 1);
  CHECK(verify(static_cast<hash_algo>(0), build(hash_algo::sm3, 3)).first_broken_seq() == 1);
}

TEST_CASE("verifier starts from an anchor for a pruned chain") {
  std::vector<audit_record> records;
  const auto pairs = build(hash_algo::sha256, 20, &records);
  const std::vector<stored> kept(pairs.begin() + 10, pairs.end());  // seq 11..20
  const std::string anchor = records[9].hash;                       // hash of seq 10

  const verifier good = verify(hash_algo::sha256, kept, 11, anchor);
  CHECK(good.ok());
  CHECK(good.checked() == 10);
  CHECK(good.last_hash() == records.back().hash);

  std::string wrong = anchor;
  wrong[0] ^= 1;
  const verifier bad = verify(hash_algo::sha256, kept, 11, wrong);
  CHECK(bad.first_broken_seq() == 11);
  CHECK(verify(hash_algo::sha256, kept, 11).first_broken_seq() == 11);  // zero anchor
  CHECK(verify(hash_algo::sha256, kept, 12, anchor).first_broken_seq() == 12);
  CHECK(verify(hash_algo::sha256, kept).first_broken_seq() == 1);  // expects seq 1 first
}

TEST_CASE("seal/open: round trip, fresh IVs, empty text, layout") {
  const std::string text = "the prompt, 提示词, and \0 binary"s;
  const std::string sealed = seal(kKey, text);
  REQUIRE(sealed.size() == 16 + text.size() + 32);
  std::string back = "old";
  REQUIRE(open(kKey, sealed, back));
  CHECK(back == text);
  CHECK(sealed.find("the prompt") == std::string::npos);

  std::set<std::string> ivs;
  for (int i = 0; i < 50; ++i) ivs.insert(seal(kKey, text).substr(0, 16));
  CHECK(ivs.size() == 50);

  const std::string empty = seal(kKey, "");
  REQUIRE(empty.size() == 48);
  back = "old";
  REQUIRE(open(kKey, empty, back));
  CHECK(back.empty());

  // Independent check of the documented layout: tag = HMAC-SM3(SM3(key || label), IV || ct),
  // and the first block is plaintext XOR SM4(key, IV) (CTR mode).
  const std::string mac_key = digest(hash_algo::sm3, kKey + "tc-audit-mac");
  unsigned char tag[EVP_MAX_MD_SIZE];
  unsigned int tag_len = 0;
  REQUIRE(HMAC(EVP_sm3(), mac_key.data(), static_cast<int>(mac_key.size()),
               reinterpret_cast<const unsigned char*>(sealed.data()), sealed.size() - 32, tag,
               &tag_len) != nullptr);
  REQUIRE(tag_len == 32);
  CHECK(sealed.substr(sealed.size() - 32) == std::string(reinterpret_cast<char*>(tag), 32));

  EVP_CIPHER_CTX* ecb = EVP_CIPHER_CTX_new();
  REQUIRE(ecb != nullptr);
  unsigned char block[32];
  int n = 0;
  // GB/T 32907-2016 example: SM4(0123…3210, 0123…3210) = 681edf34…4246.
  REQUIRE(EVP_EncryptInit_ex(ecb, EVP_sm4_ecb(), nullptr,
                             reinterpret_cast<const unsigned char*>(kKey.data()), nullptr) == 1);
  EVP_CIPHER_CTX_set_padding(ecb, 0);
  REQUIRE(EVP_EncryptUpdate(ecb, block, &n, reinterpret_cast<const unsigned char*>(kKey.data()),
                            16) == 1);
  CHECK(to_hex(std::string(reinterpret_cast<char*>(block), 16)) ==
        "681edf34d206965e86b3e94f536e4246");
  REQUIRE(EVP_EncryptUpdate(ecb, block, &n, reinterpret_cast<const unsigned char*>(sealed.data()),
                            16) == 1);
  EVP_CIPHER_CTX_free(ecb);
  for (int i = 0; i < 16; ++i) CHECK((sealed[16 + i] ^ static_cast<char>(block[i])) == text[i]);
}

TEST_CASE("open rejects wrong keys, any flipped byte, truncation, seal rejects bad keys") {
  const std::string text = "confidential prompt";
  const std::string sealed = seal(kKey, text);
  REQUIRE_FALSE(sealed.empty());
  std::string out = "untouched";

  std::string other = kKey;
  other[15] ^= 1;
  CHECK_FALSE(open(other, sealed, out));
  for (std::size_t at = 0; at < sealed.size(); ++at) {
    for (char mask : {'\x01', '\x80'}) {
      std::string t = sealed;
      t[at] ^= mask;
      if (open(kKey, t, out)) FAIL_CHECK("flip accepted at byte " << at);
    }
  }
  for (std::size_t n = 0; n < sealed.size(); ++n) {
    if (open(kKey, std::string_view(sealed).substr(0, n), out))
      FAIL_CHECK("truncation accepted at " << n);
  }
  CHECK_FALSE(open(kKey, sealed + "x", out));
  CHECK(out == "untouched");

  for (const std::string& bad_key :
       {std::string(), kKey.substr(0, 15), kKey + "x", std::string(32, 'k')}) {
    CHECK(seal(bad_key, text).empty());
    CHECK_FALSE(open(bad_key, sealed, out));
  }
  CHECK(out == "untouched");
}
