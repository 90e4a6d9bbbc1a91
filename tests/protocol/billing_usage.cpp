// Usage records: outcome and dimension names, UTC days, the binary format (round trips,
// truncation, garbage), JSON (escaping, money) and CSV (RFC 4180 quoting), totals, reports.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "protocol/billing/usage.hpp"

namespace {

using namespace tc::billing;

usage_record sample() {
  usage_record r;
  r.request_id = "req-0001";
  r.ts_ms = 1795305600000 + 3723000;  // 2026-11-22T01:02:03Z
  r.tenant = "acme";
  r.project = "web";
  r.key = "key_0123456789abcdef";
  r.model = "Qwen/Qwen2.5-7B";
  r.provider = "sim";
  r.endpoint = "chat";
  r.status = 200;
  r.result = outcome::ok;
  r.prompt_tokens = 1200;
  r.cached_tokens = 300;
  r.completion_tokens = 45;
  r.estimated = true;
  r.cost_micros = 1250;
  r.cost_currency = "USD";
  r.charged_micros = 2500;
  r.charged_currency = "CNY";
  r.saved_micros = -1;
  r.client_request_id = "client-7";
  return r;
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

}  // namespace

TEST_CASE("outcome and dimension names round trip, unknown names fail") {
  const std::vector<std::string> names = {
      "ok", "upstream_error", "client_gone", "content_filter", "cache_hit", "dedup", "rejected"};
  for (size_t i = 0; i < names.size(); ++i) {
    CHECK(outcome_name(static_cast<outcome>(i)) == names[i]);
    outcome o = outcome::ok;
    REQUIRE(parse_outcome(names[i], o));
    CHECK(o == static_cast<outcome>(i));
  }
  outcome o = outcome::dedup;
  CHECK_FALSE(parse_outcome("OK", o));
  CHECK_FALSE(parse_outcome("", o));
  CHECK(o == outcome::dedup);

  const std::vector<std::string> dims = {"day", "tenant", "project", "key", "model", "provider"};
  for (size_t i = 0; i < dims.size(); ++i) {
    CHECK(dimension_name(static_cast<dimension>(i)) == dims[i]);
    dimension d = dimension::day;
    REQUIRE(parse_dimension(dims[i], d));
    CHECK(d == static_cast<dimension>(i));
  }
  dimension d = dimension::model;
  CHECK_FALSE(parse_dimension("days", d));
  CHECK(d == dimension::model);
}

TEST_CASE("day_of floors towards minus infinity") {
  CHECK(day_of(0) == 0);
  CHECK(day_of(86399999) == 0);
  CHECK(day_of(86400000) == 1);
  CHECK(day_of(-1) == -1);
  CHECK(day_of(-86400000) == -1);
  CHECK(day_of(-86400001) == -2);
  CHECK(day_of(1795305600000) == 20779);
  CHECK(day_of(std::numeric_limits<int64_t>::min()) == -106751991168);
  CHECK(day_of(std::numeric_limits<int64_t>::max()) == 106751991167);
}

TEST_CASE("day_name formats known dates") {
  CHECK(day_name(0) == "1970-01-01");
  CHECK(day_name(-1) == "1969-12-31");
  CHECK(day_name(20779) == "2026-11-22");
  CHECK(day_name(11016) == "2000-02-29");
  CHECK(day_name(11017) == "2000-03-01");
  CHECK(day_name(-25509) == "1900-02-28");
  CHECK(day_name(-25508) == "1900-03-01");  // 1900 is not a leap year
  CHECK(day_name(-719528) == "0000-01-01");
  CHECK(day_name(2932896) == "9999-12-31");
  CHECK(day_name(-719529) == "-0001-12-31");
  // Extreme values do not overflow.
  CHECK_FALSE(day_name(std::numeric_limits<int64_t>::max()).empty());
  CHECK_FALSE(day_name(std::numeric_limits<int64_t>::min()).empty());
}

TEST_CASE("parse_day is strict and round trips with day_name over years 0000-9999") {
  int64_t day = 42;
  REQUIRE(parse_day("2026-11-22", day));
  CHECK(day == 20779);
  REQUIRE(parse_day("2000-02-29", day));
  CHECK(day == 11016);
  REQUIRE(parse_day("0000-01-01", day));
  CHECK(day == -719528);
  day = 42;
  for (const char* bad :
       {"2026-2-1", "2026-13-01", "2026-02-30", "2026-00-10", "2026-01-00", "1900-02-29",
        "2026-01-32", "2026-01-01 ", " 2026-01-01", "2026/01/01", "20260101", "", "2026-01-0a",
        "-001-01-01", "+026-01-01", "2026-04-31", "2026-01-1\n"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_day(bad, day));
  }
  CHECK(day == 42);

  int64_t first = 0, last = 0;
  REQUIRE(parse_day("0000-01-01", first));
  REQUIRE(parse_day("9999-12-31", last));
  int64_t checked = 0;
  for (int64_t d = first; d <= last; d += 7) {  // every weekday of every month in 10000 years
    int64_t back = 0;
    const std::string name = day_name(d);
    REQUIRE(name.size() == 10);
    REQUIRE(parse_day(name, back));
    REQUIRE(back == d);
    ++checked;
  }
  CHECK(checked > 500000);
  for (int64_t d = first - 3; d < first; ++d) {
    int64_t back = 0;
    CHECK_FALSE(parse_day(day_name(d), back));  // negative years are not "YYYY"
  }
}

TEST_CASE("rows written before client_request_id existed (version 1) still decode") {
  usage_record r = sample();
  r.client_request_id.clear();
  std::string v1 = encode(r);
  REQUIRE(v1.back() == '\0');  // the empty client_request_id: a one-byte length
  v1.pop_back();
  v1[0] = 1;
  usage_record back;
  REQUIRE(decode(v1, back));
  CHECK(back == r);
  // A version-2 row must carry the field.
  v1[0] = 2;
  CHECK_FALSE(decode(v1, back));
}

TEST_CASE("encode/decode round trip a sample and reject what it did not write") {
  const usage_record r = sample();
  const std::string bytes = encode(r);
  usage_record back;
  REQUIRE(decode(bytes, back));
  CHECK(back == r);

  // Every truncation fails and leaves the output untouched.
  for (size_t n = 0; n < bytes.size(); ++n) {
    usage_record out;
    out.request_id = "untouched";
    CAPTURE(n);
    CHECK_FALSE(decode(std::string_view(bytes).substr(0, n), out));
    CHECK(out.request_id == "untouched");
  }
  CHECK_FALSE(decode(bytes + '\0', back));
  CHECK_FALSE(decode(bytes + "garbage", back));

  std::string v = bytes;
  v[0] = 3;  // unknown version
  CHECK_FALSE(decode(v, back));
  v[0] = 0;
  CHECK_FALSE(decode(v, back));

  // The outcome byte sits right after status; an unknown outcome is refused.
  usage_record z;
  const std::string empty = encode(z);
  // version(1) id(1) ts(8) 6 strings(6) status(4) -> outcome at offset 20
  REQUIRE(empty.size() > 21);
  CHECK(empty[20] == 0);
  std::string bad = empty;
  bad[20] = 7;
  CHECK_FALSE(decode(bad, back));
  bad[20] = 6;
  CHECK(decode(bad, back));
  CHECK(back.result == outcome::rejected);
  // estimated at 20 + 1 + 12 = 33: only 0 or 1.
  bad = empty;
  CHECK(bad[33] == 0);
  bad[33] = 2;
  CHECK_FALSE(decode(bad, back));
  // A non-minimal length (0x80 0x00 for 0) is not something encode() writes.
  bad = empty.substr(0, 1) + std::string("\x80\x00", 2) + empty.substr(2);
  CHECK_FALSE(decode(bad, back));
  // A huge length must not read out of bounds.
  bad = empty.substr(0, 1) + std::string("\xff\xff\xff\xff\x0f", 5) + empty.substr(2);
  CHECK_FALSE(decode(bad, back));
  bad = empty.substr(0, 1) + std::string("\xff\xff\xff\xff\x7f", 5) + empty.substr(2);
  CHECK_FALSE(decode(bad, back));
}

TEST_CASE("randomized encode/decode round trip") {
  std::mt19937_64 rng(20261122);
  const auto rand_str = [&](size_t max) {
    std::string s(rng() % (max + 1), '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  const auto rand_i64 = [&] {
    switch (rng() % 4) {
      case 0:
        return std::numeric_limits<int64_t>::min();
      case 1:
        return std::numeric_limits<int64_t>::max();
      default:
        return static_cast<int64_t>(rng());
    }
  };
  for (int i = 0; i < 2000; ++i) {
    usage_record r;
    r.request_id = rand_str(40);
    r.ts_ms = rand_i64();
    r.tenant = rand_str(20);
    r.project = rand_str(20);
    r.key = rand_str(20);
    r.model = rand_str(i % 50 == 0 ? 300 : 30);  // lengths needing 2-byte varints too
    r.provider = rand_str(20);
    r.endpoint = rand_str(12);
    r.status = static_cast<int>(static_cast<uint32_t>(rng()));
    r.result = static_cast<outcome>(rng() % 7);
    r.prompt_tokens = static_cast<uint32_t>(rng());
    r.cached_tokens = static_cast<uint32_t>(rng());
    r.completion_tokens = static_cast<uint32_t>(rng());
    r.estimated = rng() & 1;
    r.cost_micros = rand_i64();
    r.cost_currency = rand_str(4);
    r.charged_micros = rand_i64();
    r.charged_currency = rand_str(4);
    r.saved_micros = rand_i64();
    const std::string bytes = encode(r);
    usage_record back;
    REQUIRE(decode(bytes, back));
    REQUIRE(back == r);
    // A random cut never decodes.
    const size_t cut = rng() % bytes.size();
    REQUIRE_FALSE(decode(std::string_view(bytes).substr(0, cut), back));
  }
}

TEST_CASE("random bytes never crash decode") {
  std::mt19937_64 rng(7);
  const std::string valid = encode(sample());
  for (int i = 0; i < 20000; ++i) {
    std::string b = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<char>(rng() & 0xff);
    usage_record out;
    (void)decode(b, out);  // ASan/UBSan are the judges here
  }
}

TEST_CASE("record JSON: every field, money strings, escaping") {
  usage_record r = sample();
  r.request_id = "a\"b\\c\n\x01\x1f";
  r.model = std::string("bad\xff\xc0utf8\xe2\x82", 12);
  const std::string text = to_json(r);
  rapidjson::Document d = parse(text);
  CHECK(std::string(d["object"].GetString()) == "usage_record");
  CHECK(std::string(d["request_id"].GetString()) == r.request_id);
  CHECK(d["ts_ms"].GetInt64() == r.ts_ms);
  CHECK(std::string(d["day"].GetString()) == "2026-11-22");
  CHECK(std::string(d["tenant"].GetString()) == "acme");
  CHECK(std::string(d["project"].GetString()) == "web");
  CHECK(std::string(d["key"].GetString()) == "key_0123456789abcdef");
  CHECK(std::string(d["model"].GetString()) ==
        "bad\xef\xbf\xbd\xef\xbf\xbdutf8\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(std::string(d["provider"].GetString()) == "sim");
  CHECK(std::string(d["endpoint"].GetString()) == "chat");
  CHECK(d["status"].GetInt() == 200);
  CHECK(std::string(d["outcome"].GetString()) == "ok");
  CHECK(d["prompt_tokens"].GetUint() == 1200);
  CHECK(d["cached_tokens"].GetUint() == 300);
  CHECK(d["completion_tokens"].GetUint() == 45);
  CHECK(d["estimated"].GetBool());
  CHECK(std::string(d["cost"].GetString()) == "0.001250");
  CHECK(std::string(d["cost_currency"].GetString()) == "USD");
  CHECK(std::string(d["charged"].GetString()) == "0.002500");
  CHECK(std::string(d["charged_currency"].GetString()) == "CNY");
  CHECK(std::string(d["saved"].GetString()) == "-0.000001");
  CHECK(text.find("\\u0001") != std::string::npos);
  CHECK(text.find("\\\"") != std::string::npos);
  CHECK(text.find('\n') == std::string::npos);

  // Valid multi-byte UTF-8 passes through unchanged.
  r.model = "\xe9\x80\x9a\xe4\xb9\x89\xe5\x8d\x83\xe9\x97\xae \xf0\x9f\x98\x80";
  d = parse(to_json(r));
  CHECK(std::string(d["model"].GetString()) == r.model);

  // Money extremes.
  r.cost_micros = std::numeric_limits<int64_t>::min();
  r.charged_micros = 123456789012;
  r.saved_micros = 0;
  d = parse(to_json(r));
  CHECK(std::string(d["cost"].GetString()) == "-9223372036854.775808");
  CHECK(std::string(d["charged"].GetString()) == "123456.789012");
  CHECK(std::string(d["saved"].GetString()) == "0.000000");
}

TEST_CASE("record CSV: header, columns, RFC 4180 quoting") {
  const std::string header = csv_header();
  CHECK(header.rfind("request_id,ts_ms,day,tenant,", 0) == 0);
  CHECK(header.substr(header.size() - 2) == "\r\n");
  usage_record r = sample();
  CHECK(to_csv_line(r) ==
        "req-0001,1795309323000,2026-11-22,acme,web,key_0123456789abcdef,Qwen/Qwen2.5-7B,sim,"
        "chat,200,ok,1200,300,45,true,0.001250,USD,0.002500,CNY,-0.000001,client-7\r\n");
  // Same number of columns in header and line.
  const auto commas = [](const std::string& s) { return std::count(s.begin(), s.end(), ','); };
  CHECK(commas(header) == commas(to_csv_line(r)));

  r.tenant = "a,b";
  r.project = "say \"hi\"";
  r.key = "line1\nline2";
  r.model = "cr\r";
  r.provider = "plain";
  const std::string line = to_csv_line(r);
  CHECK(line.find(",\"a,b\",\"say \"\"hi\"\"\",\"line1\nline2\",\"cr\r\",plain,") !=
        std::string::npos);
}

TEST_CASE("usage_totals add records and totals") {
  usage_totals t;
  usage_record r = sample();
  t.add(r);
  r.result = outcome::cache_hit;
  t.add(r);
  r.result = outcome::dedup;
  t.add(r);
  r.result = outcome::rejected;
  t.add(r);
  CHECK(t.requests == 4);
  CHECK(t.prompt_tokens == 4800);
  CHECK(t.cached_tokens == 1200);
  CHECK(t.completion_tokens == 180);
  CHECK(t.cache_hits == 2);
  CHECK(t.cost_micros == 5000);
  CHECK(t.charged_micros == 10000);
  CHECK(t.saved_micros == -4);

  usage_totals u;
  u.add(t);
  u.add(t);
  CHECK(u.requests == 8);
  CHECK(u.cache_hits == 4);
  CHECK(u.charged_micros == 20000);
  CHECK(u.saved_micros == -8);

  usage_totals big;
  big.charged_micros = std::numeric_limits<int64_t>::max() - 1;
  big.saved_micros = std::numeric_limits<int64_t>::min() + 1;
  big.add(t);  // saturates, no UB
  CHECK(big.charged_micros == std::numeric_limits<int64_t>::max());
  CHECK(big.saved_micros == std::numeric_limits<int64_t>::min());
}

TEST_CASE("report JSON has the documented shape") {
  usage_report rep;
  REQUIRE(parse_day("2026-11-01", rep.query.from_day));
  REQUIRE(parse_day("2026-11-22", rep.query.to_day));
  rep.query.group_by = {dimension::tenant, dimension::model};
  usage_row row;
  row.group = {"acme", "sim-chat"};
  row.totals.requests = 10;
  row.totals.prompt_tokens = 100;
  row.totals.cached_tokens = 20;
  row.totals.completion_tokens = 30;
  row.totals.cache_hits = 2;
  row.totals.cost_micros = 1250;
  row.totals.charged_micros = 1250;
  rep.rows.push_back(row);
  rep.totals = row.totals;
  const std::string text = to_json(rep);
  CHECK(text ==
        "{\"object\":\"usage_report\",\"from\":\"2026-11-01\",\"to\":\"2026-11-22\","
        "\"group_by\":[\"tenant\",\"model\"],\"rows\":[{\"group\":{\"tenant\":\"acme\","
        "\"model\":\"sim-chat\"},\"requests\":10,\"prompt_tokens\":100,\"cached_tokens\":20,"
        "\"completion_tokens\":30,\"cache_hits\":2,\"cost\":\"0.001250\",\"charged\":"
        "\"0.001250\",\"saved\":\"0.000000\"}],\"totals\":{\"requests\":10,\"prompt_tokens\":100,"
        "\"cached_tokens\":20,\"completion_tokens\":30,\"cache_hits\":2,\"cost\":\"0.001250\","
        "\"charged\":\"0.001250\",\"saved\":\"0.000000\"}}");
  rapidjson::Document d = parse(text);
  CHECK(d["rows"].Size() == 1);

  usage_report empty;
  d = parse(to_json(empty));
  CHECK(d["group_by"].Size() == 0);
  CHECK(d["rows"].Size() == 0);
  CHECK(d["totals"]["requests"].GetUint64() == 0);
}

TEST_CASE("report CSV: group columns then counters, quoted values") {
  usage_report rep;
  rep.query.group_by = {dimension::day, dimension::model};
  usage_row row;
  row.group = {"2026-11-22", "m,1"};
  row.totals.requests = 3;
  row.totals.charged_micros = -5;
  rep.rows.push_back(row);
  row.group = {"2026-11-23", "Qwen/Qwen2.5-7B"};
  row.totals.requests = 1;
  row.totals.charged_micros = 1000000;
  rep.rows.push_back(row);
  CHECK(to_csv(rep) ==
        "day,model,requests,prompt_tokens,cached_tokens,completion_tokens,cache_hits,cost,"
        "charged,saved\r\n"
        "2026-11-22,\"m,1\",3,0,0,0,0,0.000000,-0.000005,0.000000\r\n"
        "2026-11-23,Qwen/Qwen2.5-7B,1,0,0,0,0,0.000000,1.000000,0.000000\r\n");

  usage_report totals_only;
  totals_only.rows.push_back(usage_row{{}, row.totals});
  CHECK(to_csv(totals_only) ==
        "requests,prompt_tokens,cached_tokens,completion_tokens,cache_hits,cost,charged,saved\r\n"
        "1,0,0,0,0,0.000000,1.000000,0.000000\r\n");
}
