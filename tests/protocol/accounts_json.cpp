// protocol/accounts/json.cpp: apply() of admin bodies (every writable field, every refusal,
// all or nothing), the API view's shapes, key status, and the stored rows' round trips.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/accounts/json.hpp"

using namespace tc::accounts;

namespace {

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag>(text.data(),
                                                                               text.size());
  REQUIRE_MESSAGE(!d.HasParseError(), text);
  return d;
}

std::vector<std::string> keys_of(const rapidjson::Value& v) {
  std::vector<std::string> out;
  for (const auto& m : v.GetObject()) out.emplace_back(m.name.GetString());
  return out;
}

std::string serialize(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

const std::vector<std::string> limits_keys = {
    "rpm",        "rpd", "tpm", "max_concurrent", "burst_pct", "daily_budget", "monthly_budget",
    "budget_mode"};

void check_limits(const rapidjson::Value& v, const limits& l) {
  REQUIRE(v.IsObject());
  CHECK(keys_of(v) == limits_keys);
  CHECK(v["rpm"].GetUint64() == l.rpm);
  CHECK(v["rpd"].GetUint64() == l.rpd);
  CHECK(v["tpm"].GetUint64() == l.tpm);
  CHECK(v["max_concurrent"].GetUint64() == l.max_concurrent);
  CHECK(v["burst_pct"].GetUint64() == l.burst_pct);
  CHECK(v["daily_budget"].GetDouble() == l.daily_budget);
  CHECK(v["monthly_budget"].GetDouble() == l.monthly_budget);
  CHECK(std::string(v["budget_mode"].GetString()) == (l.soft_budget ? "soft" : "hard"));
}

limits full_limits(uint64_t base) {
  limits l;
  l.rpm = base + 1;
  l.rpd = base + 2;
  l.tpm = base + 3;
  l.max_concurrent = base + 4;
  l.burst_pct = 50;
  l.daily_budget = 12.5;
  l.monthly_budget = 0.1;
  l.soft_budget = true;
  return l;
}

// A string with every kind of byte a writer must escape or keep.
constexpr char odd_raw[] = "q\"uote\\ back/slash \n\t\x01 ctl \0 nul caf\xc3\xa9 \xe4\xb8\xad";
const std::string odd(odd_raw, sizeof odd_raw - 1);

tenant full_tenant() {
  tenant t;
  t.id = "acme";
  t.name = odd;
  t.currency = "USD";
  t.price_factor = 0.9;
  t.cache_scope = "shared-1";
  t.filing_id = "网信算备110108-1号";
  t.priority = 1;
  t.residency_regions = {"cn-east", "cn-north"};
  t.residency_tags = {"pipl"};
  t.limit = full_limits(100);
  t.model_limits["gpt-4*"] = full_limits(7);
  t.model_limits["*mini"] = limits{};
  t.model_limits[odd] = full_limits(1);
  t.disabled = true;
  t.created_at = 1763769600;
  return t;
}

project full_project() {
  project p;
  p.tenant = "acme";
  p.id = "web";
  p.name = "Web \"front\"";
  p.limit = full_limits(5);
  p.created_at = -5;  // any int64 round trips
  return p;
}

api_key full_key() {
  api_key k;
  k.id = "key_0123456789abcdef";
  k.tenant = "acme";
  k.project = "web";
  k.environment = "staging";
  k.name = odd;
  k.prefix = "sk-tc-AbCdEf";
  k.hash = "af68488491862df11db2a219dfd351621639edc8e995ebbb3c791b8a40b88719";
  k.created_at = 1763769600;
  k.expires_at = INT64_MAX;
  k.revoked_at = 0;
  k.replaced_by = "key_fedcba9876543210";
  k.grace_until = 1763856000;
  k.allowed_models = {"gpt-4*", "qwen-?", ""};
  k.allowed_endpoints = {"chat", "embeddings"};
  k.priority = 4;
  k.max_priority = 1;
  k.limit = full_limits(UINT64_MAX - 10);
  return k;
}

admin_token full_admin() {
  admin_token a;
  a.id = "adm_0123456789abcdef";
  a.name = "ops";
  a.level = role::operator_;
  a.prefix = "tc-adm-AbCde";
  a.hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  a.created_at = 1;
  a.revoked_at = INT64_MIN;
  return a;
}

price full_price() {
  price p;
  p.provider = "sim";
  p.model = "sim-chat";
  p.input_per_m = 2.0;
  p.cached_input_per_m = 1.0 / 3.0;
  p.output_per_m = 0.30000000000000004;
  p.currency = "USD";
  return p;
}

/// apply() must refuse `body` with `param` and a message containing `needle`, and leave `x` as
/// it was.
template <class T>
void refuse(const std::string& body, const T& start, const std::string& param,
            const std::string& needle) {
  T x = start;
  field_error err;
  CAPTURE(body);
  CHECK_FALSE(apply(body, x, err));
  CHECK(err.param == param);
  CHECK_MESSAGE(err.message.find(needle) != std::string::npos, err.message);
  CHECK(x == start);
}

template <class T>
T applied(const std::string& body, const T& start = T{}) {
  T x = start;
  field_error err;
  CAPTURE(body);
  CHECK_MESSAGE(apply(body, x, err), err.message);
  return x;
}

}  // namespace

// -- API view ---------------------------------------------------------------------------------

TEST_CASE("to_json(limits): every field, in order") {
  const limits l = full_limits(10);
  const auto d = parse(to_json(l));
  check_limits(d, l);
  CHECK(to_json(limits{}) ==
        R"({"rpm":0,"rpd":0,"tpm":0,"max_concurrent":0,"burst_pct":0,"daily_budget":0.0,)"
        R"("monthly_budget":0.0,"budget_mode":"hard"})");
}

TEST_CASE("to_json(tenant)") {
  const tenant t = full_tenant();
  const auto d = parse(to_json(t));
  CHECK(keys_of(d) == std::vector<std::string>{"object", "id", "name", "currency", "price_factor",
                                               "cache_scope", "filing_id", "priority",
                                               "residency_regions", "residency_tags", "limits",
                                               "model_limits", "disabled", "created_at"});
  REQUIRE(d["residency_regions"].Size() == 2);
  CHECK(std::string(d["residency_regions"][1].GetString()) == "cn-north");
  CHECK(std::string(d["residency_tags"][0].GetString()) == "pipl");
  CHECK(std::string(d["object"].GetString()) == "tenant");
  CHECK(std::string(d["id"].GetString()) == "acme");
  CHECK(std::string(d["name"].GetString(), d["name"].GetStringLength()) == odd);
  CHECK(std::string(d["currency"].GetString()) == "USD");
  CHECK(d["price_factor"].GetDouble() == 0.9);
  CHECK(std::string(d["cache_scope"].GetString()) == "shared-1");
  CHECK(std::string(d["filing_id"].GetString()) == "网信算备110108-1号");
  CHECK(d["priority"].GetUint() == 1);
  check_limits(d["limits"], t.limit);
  REQUIRE(d["model_limits"].IsObject());
  CHECK(d["model_limits"].MemberCount() == 3);
  check_limits(d["model_limits"]["gpt-4*"], t.model_limits.at("gpt-4*"));
  check_limits(d["model_limits"]["*mini"], limits{});
  CHECK(d["disabled"].GetBool());
  CHECK(d["created_at"].GetInt64() == 1763769600);

  // The documented example of a default tenant.
  tenant plain;
  plain.id = "acme";
  plain.name = "Acme";
  const std::string s = to_json(plain);
  CHECK(s.find(R"("price_factor":1.0,)") != std::string::npos);
  CHECK(s.find(R"("model_limits":{},"disabled":false,"created_at":0})") != std::string::npos);
}

TEST_CASE("to_json(project)") {
  const project p = full_project();
  const auto d = parse(to_json(p));
  CHECK(keys_of(d) ==
        std::vector<std::string>{"object", "id", "tenant", "name", "limits", "created_at"});
  CHECK(std::string(d["object"].GetString()) == "project");
  CHECK(std::string(d["id"].GetString()) == "web");
  CHECK(std::string(d["tenant"].GetString()) == "acme");
  CHECK(std::string(d["name"].GetString()) == "Web \"front\"");
  check_limits(d["limits"], p.limit);
  CHECK(d["created_at"].GetInt64() == -5);
}

TEST_CASE("to_json(api_key): status, never the hash") {
  const api_key k = full_key();
  const std::string s = to_json(k, 1763769700);
  const auto d = parse(s);
  CHECK(keys_of(d) == std::vector<std::string>{"object", "id", "tenant", "project", "environment",
                                               "name", "prefix", "status", "created_at",
                                               "expires_at", "revoked_at", "replaced_by",
                                               "grace_until", "allowed_models", "allowed_endpoints",
                                               "priority", "max_priority", "limits"});
  CHECK(std::string(d["object"].GetString()) == "key");
  CHECK(std::string(d["id"].GetString()) == k.id);
  CHECK(std::string(d["tenant"].GetString()) == "acme");
  CHECK(std::string(d["project"].GetString()) == "web");
  CHECK(std::string(d["environment"].GetString()) == "staging");
  CHECK(std::string(d["name"].GetString(), d["name"].GetStringLength()) == odd);
  CHECK(std::string(d["prefix"].GetString()) == "sk-tc-AbCdEf");
  CHECK(std::string(d["status"].GetString()) == "rotated");
  CHECK(d["created_at"].GetInt64() == 1763769600);
  CHECK(d["expires_at"].GetInt64() == INT64_MAX);
  CHECK(d["revoked_at"].GetInt64() == 0);
  CHECK(std::string(d["replaced_by"].GetString()) == "key_fedcba9876543210");
  CHECK(d["grace_until"].GetInt64() == 1763856000);
  REQUIRE(d["allowed_models"].IsArray());
  REQUIRE(d["allowed_models"].Size() == 3);
  CHECK(std::string(d["allowed_models"][1].GetString()) == "qwen-?");
  REQUIRE(d["allowed_endpoints"].Size() == 2);
  CHECK(std::string(d["allowed_endpoints"][1].GetString()) == "embeddings");
  CHECK(d["priority"].GetUint() == 4);
  CHECK(d["max_priority"].GetUint() == 1);
  check_limits(d["limits"], k.limit);
  CHECK(s.find(k.hash) == std::string::npos);
  CHECK(s.find("hash") == std::string::npos);
  CHECK(s.find("secret") == std::string::npos);

  CHECK(std::string(parse(to_json(k, 1763856000))["status"].GetString()) == "expired");

  // The one-argument form uses the system clock.
  api_key fresh;
  fresh.expires_at = 1;  // 1970
  CHECK(std::string(parse(to_json(fresh))["status"].GetString()) == "expired");
  fresh.expires_at = INT64_MAX;
  CHECK(std::string(parse(to_json(fresh))["status"].GetString()) == "active");
  const auto dd = parse(to_json(api_key{}));
  REQUIRE(dd["allowed_models"].Size() == 1);
  CHECK(std::string(dd["allowed_models"][0].GetString()) == "*");
  CHECK(dd["allowed_endpoints"].Size() == 4);
  CHECK(std::string(dd["environment"].GetString()) == "prod");
}

TEST_CASE("to_json(admin_token): role by name, never the hash") {
  const admin_token a = full_admin();
  const std::string s = to_json(a);
  const auto d = parse(s);
  CHECK(keys_of(d) == std::vector<std::string>{"object", "id", "name", "role", "prefix",
                                               "created_at", "revoked_at"});
  CHECK(std::string(d["object"].GetString()) == "admin_token");
  CHECK(std::string(d["id"].GetString()) == "adm_0123456789abcdef");
  CHECK(std::string(d["name"].GetString()) == "ops");
  CHECK(std::string(d["role"].GetString()) == "operator");
  CHECK(std::string(d["prefix"].GetString()) == "tc-adm-AbCde");
  CHECK(d["created_at"].GetInt64() == 1);
  CHECK(d["revoked_at"].GetInt64() == INT64_MIN);
  CHECK(s.find(a.hash) == std::string::npos);
  CHECK(s.find("hash") == std::string::npos);
  admin_token o;
  o.level = role::owner;
  CHECK(std::string(parse(to_json(o))["role"].GetString()) == "owner");
}

TEST_CASE("to_json(price)") {
  const price p = full_price();
  const auto d = parse(to_json(p));
  CHECK(keys_of(d) == std::vector<std::string>{"object", "provider", "model", "input_per_m",
                                               "cached_input_per_m", "output_per_m", "currency"});
  CHECK(std::string(d["object"].GetString()) == "price");
  CHECK(std::string(d["provider"].GetString()) == "sim");
  CHECK(std::string(d["model"].GetString()) == "sim-chat");
  CHECK(d["input_per_m"].GetDouble() == 2.0);
  CHECK(d["cached_input_per_m"].GetDouble() == 1.0 / 3.0);
  CHECK(d["output_per_m"].GetDouble() == 0.30000000000000004);
  CHECK(std::string(d["currency"].GetString()) == "USD");

  price bad;
  bad.input_per_m = NAN;
  bad.output_per_m = INFINITY;
  const auto b = parse(to_json(bad));  // still valid JSON
  CHECK(b["input_per_m"].GetDouble() == 0);
  CHECK(b["output_per_m"].GetDouble() == 0);
}

TEST_CASE("list_json") {
  CHECK(list_json({}) == R"({"object":"list","data":[]})");
  const auto d = parse(list_json({to_json(full_price()), to_json(full_project())}));
  CHECK(keys_of(d) == std::vector<std::string>{"object", "data"});
  CHECK(std::string(d["object"].GetString()) == "list");
  REQUIRE(d["data"].Size() == 2);
  CHECK(std::string(d["data"][0]["object"].GetString()) == "price");
  CHECK(std::string(d["data"][1]["object"].GetString()) == "project");
}

TEST_CASE("key_status transitions") {
  api_key k;
  CHECK(key_status(k, 0) == "active");
  CHECK(key_status(k, INT64_MAX) == "active");  // expires_at 0: never

  k.expires_at = 1000;
  CHECK(key_status(k, 999) == "active");
  CHECK(key_status(k, 1000) == "expired");
  CHECK(key_status(k, 5000) == "expired");

  k.replaced_by = "key_1111111111111111";
  k.grace_until = 2000;
  CHECK(key_status(k, 500) == "rotated");  // the grace period decides, not expires_at
  CHECK(key_status(k, 1999) == "rotated");
  CHECK(key_status(k, 2000) == "expired");

  k.revoked_at = 1500;
  CHECK(key_status(k, 0) == "revoked");  // revocation wins over everything
  CHECK(key_status(k, 1999) == "revoked");
  CHECK(key_status(k, 3000) == "revoked");

  api_key r;
  r.replaced_by = "key_2222222222222222";
  r.grace_until = 0;  // rotated with no grace: dead at once
  CHECK(key_status(r, 0) == "expired");
}

// -- apply: bodies ------------------------------------------------------------------------------

TEST_CASE("apply: the body must be one JSON object") {
  const tenant start = full_tenant();
  for (const std::string body : {"", " ", "[]", "\"x\"", "1", "null", "true", "{", "{\"name\":}",
                                 "{} {}", "{}x", "{\"name\":\"a\",}", "{'name':'a'}"}) {
    tenant t = start;
    field_error err;
    CAPTURE(body);
    CHECK_FALSE(apply(body, t, err));
    CHECK(err.param.empty());
    CHECK_FALSE(err.message.empty());
    CHECK(t == start);
  }
  // RapidJSON would stop at a NUL byte and ignore what follows.
  refuse(std::string("{}\0{\"name\":1}", 13), start, "", "NUL");
  refuse(std::string("{\"name\":\"a\0b\"}", 14), start, "", "NUL");
  // Invalid UTF-8 in a string.
  refuse(std::string("{\"name\":\"caf\xc3\"}"), start, "", "parse");
  refuse(std::string("{\"name\":\"\xff\"}"), start, "", "parse");
  // An empty object changes nothing and succeeds.
  CHECK(applied<tenant>("{}", start) == start);
  CHECK(applied<tenant>(" \n{ }\t", start) == start);
}

TEST_CASE("apply: deep nesting is an error, not a crash") {
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  refuse<tenant>("{\"name\":" + deep + "}", tenant{}, "name", "expected a string");
  refuse<tenant>("{\"limits\":{\"rpm\":" + deep + "}}", tenant{}, "limits.rpm", "whole number");
  refuse<tenant>(deep, tenant{}, "", "object");
  std::string deep_obj;
  for (int i = 0; i < 50'000; ++i) deep_obj += "{\"a\":";
  deep_obj += "1" + std::string(50'000, '}');
  refuse<project>(deep_obj, project{}, "a", "Unknown field 'a'.");
}

TEST_CASE("apply: duplicate keys, the last one wins") {
  const tenant t = applied<tenant>(R"({"name":"first","name":"second"})");
  CHECK(t.name == "second");
}

// -- apply: limits ------------------------------------------------------------------------------

TEST_CASE("apply(limits): every field") {
  const limits l =
      applied<limits>(R"({"rpm":60,"rpd":1000,"tpm":90000,"max_concurrent":8,"burst_pct":20,)"
                      R"("daily_budget":12.5,"monthly_budget":300,"budget_mode":"soft"})");
  CHECK(l.rpm == 60);
  CHECK(l.rpd == 1000);
  CHECK(l.tpm == 90000);
  CHECK(l.max_concurrent == 8);
  CHECK(l.burst_pct == 20);
  CHECK(l.daily_budget == 12.5);
  CHECK(l.monthly_budget == 300);
  CHECK(l.soft_budget);
  CHECK_FALSE(applied<limits>(R"({"budget_mode":"hard"})", l).soft_budget);

  // Only the fields present change.
  limits p = applied<limits>(R"({"rpm":5})", l);
  CHECK(p.rpm == 5);
  CHECK(p.tpm == 90000);
  CHECK(p.soft_budget);

  // Whole numbers may be written as integral decimals; the full uint64 range is accepted.
  CHECK(applied<limits>(R"({"tpm":1e3})").tpm == 1000);
  CHECK(applied<limits>(R"({"rpm":5.0})").rpm == 5);
  CHECK(applied<limits>(R"({"rpm":-0.0})").rpm == 0);
  CHECK(applied<limits>(R"({"rpd":18446744073709551615})").rpd == UINT64_MAX);
  CHECK(applied<limits>(R"({"burst_pct":1000})").burst_pct == 1000);
  CHECK(applied<limits>(R"({"daily_budget":0})").daily_budget == 0);
  CHECK(applied<limits>(R"({"daily_budget":0.1})").daily_budget == 0.1);
  CHECK(applied<limits>(R"({"monthly_budget":1e12})").monthly_budget == 1e12);
}

TEST_CASE("apply(limits): refusals") {
  const limits start = full_limits(3);
  for (const char* f : {"rpm", "rpd", "tpm", "max_concurrent", "burst_pct"}) {
    const std::string k = f;
    refuse("{\"" + k + "\":1.5}", start, k, "whole number");
    refuse("{\"" + k + "\":-1}", start, k, "whole number");
    refuse("{\"" + k + "\":1e30}", start, k, "whole number");
    refuse("{\"" + k + "\":18446744073709551616}", start, k, "whole number");
    refuse("{\"" + k + "\":\"5\"}", start, k, "Invalid type for '" + k + "'");
    refuse("{\"" + k + "\":null}", start, k, "Invalid type");
    refuse("{\"" + k + "\":true}", start, k, "Invalid type");
  }
  refuse(R"({"burst_pct":1001})", start, "burst_pct", "from 0 to 1000");
  for (const char* f : {"daily_budget", "monthly_budget"}) {
    const std::string k = f;
    refuse("{\"" + k + "\":-0.01}", start, k, "Invalid value");
    refuse("{\"" + k + "\":1e13}", start, k, "Invalid value");
    refuse("{\"" + k + "\":\"1\"}", start, k, "Invalid type");
    refuse("{\"" + k + "\":null}", start, k, "Invalid type");
  }
  refuse(R"({"budget_mode":"warn"})", start, "budget_mode", "'hard', 'soft'");
  refuse(R"({"budget_mode":true})", start, "budget_mode", "Invalid type");
  refuse(R"({"soft_budget":true})", start, "soft_budget", "Unknown field 'soft_budget'.");
  refuse(R"({"rpm":5,"bogus":1})", start, "bogus", "Unknown field 'bogus'.");
  // All or nothing: a good field before a bad one is not applied.
  refuse(R"({"rpm":5,"tpm":-1})", start, "tpm", "whole number");
}

// -- apply: tenant ------------------------------------------------------------------------------

TEST_CASE("apply(tenant): every writable field") {
  const tenant t = applied<tenant>(
      R"({"id":"acme","name":"Acme \u4e2d","currency":"USD","price_factor":1.2,)"
      R"("cache_scope":"shared","priority":0,"limits":{"rpm":10,"budget_mode":"soft"},)"
      R"("model_limits":{"gpt-4*":{"tpm":500},"qwen-?":{}},"disabled":true,)"
      R"("residency_regions":["cn-east"],"residency_tags":["pipl","gov"]})");
  CHECK(t.residency_regions == std::vector<std::string>{"cn-east"});
  CHECK(t.residency_tags == std::vector<std::string>{"pipl", "gov"});
  // An empty list lifts the rule.
  CHECK(applied<tenant>(R"({"residency_regions":[]})").residency_regions.empty());
  CHECK(t.id == "acme");
  CHECK(t.name == "Acme \xe4\xb8\xad");
  CHECK(t.currency == "USD");
  CHECK(t.price_factor == 1.2);
  CHECK(t.cache_scope == "shared");
  CHECK(t.priority == 0);
  CHECK(t.limit.rpm == 10);
  CHECK(t.limit.soft_budget);
  REQUIRE(t.model_limits.size() == 2);
  CHECK(t.model_limits.at("gpt-4*").tpm == 500);
  CHECK(t.model_limits.at("qwen-?").empty());
  CHECK(t.disabled);
  CHECK(t.created_at == 0);

  // PATCH: limits merge field by field; model_limits is replaced as a whole; "" clears a scope.
  const tenant u = applied<tenant>(
      R"({"limits":{"tpm":7},"model_limits":{"glm-*":{"rpm":1}},"cache_scope":"",)"
      R"("disabled":false,"priority":4,"price_factor":100,"currency":"CNY","name":""})",
      t);
  CHECK(u.id == "acme");
  CHECK(u.limit.rpm == 10);
  CHECK(u.limit.tpm == 7);
  CHECK(u.limit.soft_budget);
  REQUIRE(u.model_limits.size() == 1);
  CHECK(u.model_limits.at("glm-*").rpm == 1);
  CHECK(u.cache_scope.empty());
  CHECK_FALSE(u.disabled);
  CHECK(u.priority == 4);
  CHECK(u.price_factor == 100);
  CHECK(u.currency == "CNY");
  CHECK(u.name.empty());
  CHECK(applied<tenant>(R"({"model_limits":{}})", t).model_limits.empty());
  CHECK(applied<tenant>(R"({"price_factor":1e-9})").price_factor == 1e-9);
  CHECK(applied<tenant>(R"({"name":")" + std::string(200, 'n') + "\"}").name.size() == 200);
}

TEST_CASE("apply(tenant): refusals") {
  const tenant start = full_tenant();
  refuse(R"({"id":"Acme"})", start, "id", "Invalid value for 'id'");
  refuse(R"({"residency_regions":"cn-east"})", start, "residency_regions", "Invalid type");
  refuse(R"({"residency_regions":["cn east"]})", start, "residency_regions", "item 0");
  refuse(R"({"residency_tags":["ok",""]})", start, "residency_tags", "item 1");
  refuse(R"({"id":""})", start, "id", "Invalid value");
  refuse(R"({"id":"-a"})", start, "id", "Invalid value");
  refuse(R"({"id":")" + std::string(65, 'a') + "\"}", start, "id", "Invalid value");
  refuse(R"({"id":7})", start, "id", "Invalid type for 'id': expected a string.");
  refuse(R"({"name":")" + std::string(201, 'n') + "\"}", start, "name", "200");
  refuse(R"({"name":null})", start, "name", "Invalid type");
  refuse(R"({"name":["a"]})", start, "name", "Invalid type");
  refuse(R"({"currency":"EUR"})", start, "currency", "'CNY', 'USD'");
  refuse(R"({"currency":1})", start, "currency", "Invalid type");
  refuse(R"({"price_factor":0})", start, "price_factor", "above 0");
  refuse(R"({"price_factor":-1})", start, "price_factor", "above 0");
  refuse(R"({"price_factor":100.000001})", start, "price_factor", "at most 100");
  refuse(R"({"price_factor":"1"})", start, "price_factor", "Invalid type");
  refuse(R"({"cache_scope":"Not A Slug"})", start, "cache_scope", "Invalid value");
  refuse(R"({"cache_scope":false})", start, "cache_scope", "Invalid type");
  refuse(R"({"filing_id":"a\r\nx-injected: 1"})", start, "filing_id", "Invalid value");
  refuse(R"({"priority":5})", start, "priority", "from 0 to 4");
  refuse(R"({"priority":-1})", start, "priority", "from 0 to 4");
  refuse(R"({"priority":1.5})", start, "priority", "from 0 to 4");
  refuse(R"({"priority":"1"})", start, "priority", "Invalid type");
  refuse(R"({"limits":5})", start, "limits", "Invalid type for 'limits': expected an object.");
  refuse(R"({"limits":{"rpm":-1}})", start, "limits.rpm", "Invalid value for 'limits.rpm'");
  refuse(R"({"limits":{"burst":1}})", start, "limits.burst", "Unknown field 'limits.burst'.");
  refuse(R"({"limits":{"budget_mode":"x"}})", start, "limits.budget_mode", "Invalid value");
  refuse(R"({"model_limits":[]})", start, "model_limits", "Invalid type");
  refuse(R"({"model_limits":{"gpt-4*":{"tpm":1.5}}})", start, "model_limits.gpt-4*.tpm",
         "Invalid value for 'model_limits.gpt-4*.tpm'");
  refuse(R"({"model_limits":{"gpt-4*":{"x":1}}})", start, "model_limits.gpt-4*.x",
         "Unknown field 'model_limits.gpt-4*.x'.");
  refuse(R"({"model_limits":{"gpt-4*":1}})", start, "model_limits.gpt-4*", "Invalid type");
  refuse(R"({"model_limits":{"":{}}})", start, "model_limits.", "glob");
  refuse(R"({"model_limits":{")" + std::string(201, 'g') + "\":{}}}", start,
         "model_limits." + std::string(201, 'g'), "glob");
  std::string many = "{\"model_limits\":{";
  for (int i = 0; i < 65; ++i) many += (i ? ",\"m" : "\"m") + std::to_string(i) + "\":{}";
  refuse(many + "}}", start, "model_limits", "64");
  refuse(R"({"disabled":"yes"})", start, "disabled", "expected a boolean");
  refuse(R"({"disabled":1})", start, "disabled", "Invalid type");
  refuse(R"({"object":"tenant"})", start, "object", "'object' is read-only.");
  refuse(R"({"created_at":1})", start, "created_at", "'created_at' is read-only.");
  refuse(R"({"model_limit":{}})", start, "model_limit", "Unknown field 'model_limit'.");
  refuse(R"({"limit":{}})", start, "limit", "Unknown field 'limit'.");
  // All or nothing: every good field before the bad one is dropped too.
  refuse(R"({"name":"New","limits":{"rpm":1},"model_limits":{},"disabled":false,"priority":9})",
         start, "priority", "from 0 to 4");
  refuse(R"({"name":"New","limits":{"rpm":1,"tpm":-1}})", start, "limits.tpm", "whole number");
}

// -- apply: project -----------------------------------------------------------------------------

TEST_CASE("apply(project)") {
  const project p = applied<project>(R"({"id":"web","name":"Web","limits":{"max_concurrent":3}})");
  CHECK(p.id == "web");
  CHECK(p.name == "Web");
  CHECK(p.limit.max_concurrent == 3);
  CHECK(p.tenant.empty());

  const project start = full_project();
  const project u = applied<project>(R"({"limits":{"rpm":1}})", start);
  CHECK(u.limit.rpm == 1);
  CHECK(u.limit.rpd == start.limit.rpd);

  refuse(R"({"id":"Web"})", start, "id", "Invalid value");
  refuse(R"({"id":null})", start, "id", "Invalid type");
  refuse(R"({"name":1})", start, "name", "Invalid type");
  refuse(R"({"name":")" + std::string(201, 'n') + "\"}", start, "name", "200");
  refuse(R"({"limits":{"rpm":"1"}})", start, "limits.rpm", "Invalid type");
  refuse(R"({"limits":[]})", start, "limits", "Invalid type");
  refuse(R"({"tenant":"other"})", start, "tenant", "'tenant' is read-only.");
  refuse(R"({"object":"project"})", start, "object", "read-only");
  refuse(R"({"created_at":0})", start, "created_at", "read-only");
  refuse(R"({"environment":"dev"})", start, "environment", "Unknown field 'environment'.");
  refuse(R"({"name":"changed","id":"Bad"})", start, "id", "Invalid value");
}

// -- apply: api_key -----------------------------------------------------------------------------

TEST_CASE("apply(api_key): every writable field") {
  const api_key k = applied<api_key>(
      R"({"tenant":"acme","project":"web","environment":"dev","name":"ci","expires_at":1800000000,)"
      R"("allowed_models":["gpt-4*","qwen-?"],"allowed_endpoints":["chat","models"],)"
      R"("priority":3,"max_priority":1,"limits":{"rpm":30}})");
  CHECK(k.tenant == "acme");
  CHECK(k.project == "web");
  CHECK(k.environment == "dev");
  CHECK(k.name == "ci");
  CHECK(k.expires_at == 1800000000);
  CHECK(k.allowed_models == std::vector<std::string>{"gpt-4*", "qwen-?"});
  CHECK(k.allowed_endpoints == std::vector<std::string>{"chat", "models"});
  CHECK(k.priority == 3);
  CHECK(k.max_priority == 1);
  CHECK(k.limit.rpm == 30);
  CHECK(k.id.empty());
  CHECK(k.hash.empty());

  // Defaults stay when fields are absent; project may be "" (no project); expires_at 0 = never.
  const api_key d = applied<api_key>(R"({"tenant":"acme","project":"","expires_at":0})");
  CHECK(d.project.empty());
  CHECK(d.environment == "prod");
  CHECK(d.allowed_models == std::vector<std::string>{"*"});
  CHECK(d.allowed_endpoints.size() == 4);
  CHECK(d.priority == 2);
  CHECK(d.max_priority == 4);  // the header can only lower it
  CHECK(applied<api_key>(R"({"expires_at":9223372036854775807})").expires_at == INT64_MAX);
  std::string many = "{\"allowed_models\":[";
  for (int i = 0; i < 64; ++i) many += (i ? ",\"m" : "\"m") + std::to_string(i) + "\"";
  CHECK(applied<api_key>(many + "]}").allowed_models.size() == 64);
  CHECK(applied<api_key>(R"({"allowed_models":[")" + std::string(200, 'm') + "\"]}")
            .allowed_models[0]
            .size() == 200);
}

TEST_CASE("apply(api_key): refusals") {
  const api_key start = full_key();
  refuse(R"({"tenant":""})", start, "tenant", "Invalid value");
  refuse(R"({"tenant":"Acme"})", start, "tenant", "Invalid value");
  refuse(R"({"tenant":1})", start, "tenant", "Invalid type");
  refuse(R"({"project":"a b"})", start, "project", "Invalid value");
  refuse(R"({"project":null})", start, "project", "Invalid type");
  refuse(R"({"environment":"production"})", start, "environment", "'dev', 'staging', 'prod'");
  refuse(R"({"environment":2})", start, "environment", "Invalid type");
  refuse(R"({"name":")" + std::string(201, 'n') + "\"}", start, "name", "200");
  refuse(R"({"expires_at":-1})", start, "expires_at", "whole number");
  refuse(R"({"expires_at":1.5})", start, "expires_at", "whole number");
  refuse(R"({"expires_at":9223372036854775808})", start, "expires_at", "whole number");
  refuse(R"({"expires_at":"2030-01-01"})", start, "expires_at", "Invalid type");
  refuse(R"({"allowed_models":[]})", start, "allowed_models", "1 to 64");
  refuse(R"({"allowed_models":"*"})", start, "allowed_models", "Invalid type");
  refuse(R"({"allowed_models":["*",1]})", start, "allowed_models", "Invalid type");
  refuse(R"({"allowed_models":["*",""]})", start, "allowed_models", "item 1");
  refuse(R"({"allowed_models":[")" + std::string(201, 'm') + "\"]}", start, "allowed_models",
         "item 0");
  std::string many = "{\"allowed_models\":[";
  for (int i = 0; i < 65; ++i) many += (i ? ",\"m" : "\"m") + std::to_string(i) + "\"";
  refuse(many + "]}", start, "allowed_models", "1 to 64");
  refuse(R"({"allowed_endpoints":[]})", start, "allowed_endpoints", "1 to 64");
  refuse(R"({"allowed_endpoints":["chat","messages"]})", start, "allowed_endpoints", "item 1");
  refuse(R"({"allowed_endpoints":[null]})", start, "allowed_endpoints", "Invalid type");
  refuse(R"({"allowed_endpoints":{}})", start, "allowed_endpoints", "Invalid type");
  refuse(R"({"priority":5})", start, "priority", "from 0 to 4");
  refuse(R"({"max_priority":5})", start, "max_priority", "from 0 to 4");
  refuse(R"({"max_priority":"P0"})", start, "max_priority", "Invalid type");
  refuse(R"({"limits":{"daily_budget":-1}})", start, "limits.daily_budget", "Invalid value");
  for (const char* f : {"object", "id", "prefix", "hash", "secret", "status", "created_at",
                        "revoked_at", "replaced_by", "grace_until"}) {
    refuse("{\"" + std::string(f) + "\":0}", start, f, "'" + std::string(f) + "' is read-only.");
  }
  refuse(R"({"models":["*"]})", start, "models", "Unknown field 'models'.");
  refuse(R"({"name":"x","allowed_models":["a"],"environment":"qa"})", start, "environment",
         "Invalid value");
}

// -- apply: admin_token and price ---------------------------------------------------------------

TEST_CASE("apply(admin_token)") {
  const admin_token a = applied<admin_token>(R"({"name":"ops","role":"owner"})");
  CHECK(a.name == "ops");
  CHECK(a.level == role::owner);
  CHECK(applied<admin_token>(R"({"role":"operator"})", a).level == role::operator_);
  CHECK(applied<admin_token>(R"({"role":"viewer"})", a).level == role::viewer);

  const admin_token start = full_admin();
  refuse(R"({"role":"admin"})", start, "role", "'viewer', 'operator', 'owner'");
  refuse(R"({"role":2})", start, "role", "Invalid type");
  refuse(R"({"name":false})", start, "name", "Invalid type");
  refuse(R"({"name":")" + std::string(201, 'n') + "\"}", start, "name", "200");
  for (const char* f : {"object", "id", "prefix", "hash", "secret", "created_at", "revoked_at"}) {
    refuse("{\"" + std::string(f) + "\":\"x\"}", start, f, "is read-only.");
  }
  refuse(R"({"level":"owner"})", start, "level", "Unknown field 'level'.");
  refuse(R"({"name":"renamed","role":"root"})", start, "role", "Invalid value");
}

TEST_CASE("apply(price)") {
  const price p = applied<price>(
      R"({"input_per_m":2,"cached_input_per_m":0.5,"output_per_m":8.25,"currency":"USD"})");
  CHECK(p.input_per_m == 2);
  CHECK(p.cached_input_per_m == 0.5);
  CHECK(p.output_per_m == 8.25);
  CHECK(p.currency == "USD");
  CHECK(applied<price>(R"({"output_per_m":0})", p).output_per_m == 0);

  const price start = full_price();
  for (const char* f : {"input_per_m", "cached_input_per_m", "output_per_m"}) {
    const std::string k = f;
    refuse("{\"" + k + "\":-1}", start, k, "Invalid value");
    refuse("{\"" + k + "\":2e12}", start, k, "Invalid value");
    refuse("{\"" + k + "\":\"2\"}", start, k, "Invalid type");
    refuse("{\"" + k + "\":null}", start, k, "Invalid type");
  }
  refuse(R"({"currency":"RMB"})", start, "currency", "Invalid value");
  refuse(R"({"provider":"x"})", start, "provider", "'provider' is read-only.");
  refuse(R"({"model":"x"})", start, "model", "'model' is read-only.");
  refuse(R"({"object":"price"})", start, "object", "read-only");
  refuse(R"({"input":1})", start, "input", "Unknown field 'input'.");
  refuse(R"({"input_per_m":3,"output_per_m":-3})", start, "output_per_m", "Invalid value");
  refuse(R"({"input_per_m":1e400})", start, "", "parse");  // beyond double: not JSON we take
}

// -- stored rows --------------------------------------------------------------------------------

namespace {

/// Every damaged form of a valid row must be refused, leaving the target untouched.
template <class T>
void check_row_refusals(const T& value) {
  const std::string row = encode(value);
  const T sentinel{};
  auto refused = [&](const std::string& bytes) {
    T x = sentinel;
    CAPTURE(bytes);
    CHECK_FALSE(decode(bytes, x));
    CHECK(x == sentinel);
  };

  // Truncated anywhere.
  for (std::size_t n = 0; n < row.size(); ++n) refused(row.substr(0, n));
  // Not JSON, or not an object.
  for (const char* g : {"", "garbage", "null", "[]", "\"row\"", "42", "{}"}) refused(g);
  refused(row + "x");
  refused(row + std::string(1, '\0') + "x");
  refused("[" + row + "]");

  const auto doc = parse(row);
  REQUIRE(doc.IsObject());
  CHECK(std::string(doc.MemberBegin()->name.GetString()) == "v");
  CHECK(doc["v"].GetUint() == 1);

  auto edited = [&](const std::function<void(rapidjson::Document&)>& edit) {
    rapidjson::Document d;
    d.CopyFrom(doc, d.GetAllocator());
    edit(d);
    return serialize(d);
  };
  // Other versions, or none.
  refused(edited([](rapidjson::Document& d) { d["v"].SetUint(2); }));
  refused(edited([](rapidjson::Document& d) { d["v"].SetUint(0); }));
  refused(edited([](rapidjson::Document& d) { d["v"].SetString("1"); }));
  refused(edited([](rapidjson::Document& d) { d["v"].SetDouble(1.5); }));
  refused(edited([](rapidjson::Document& d) { d.RemoveMember("v"); }));
  // An unknown field, or a field twice.
  refused(edited([](rapidjson::Document& d) { d.AddMember("extra", 1, d.GetAllocator()); }));
  refused(edited([](rapidjson::Document& d) { d.AddMember("v", 1, d.GetAllocator()); }));
  {
    rapidjson::Document d;
    d.CopyFrom(doc, d.GetAllocator());
    const auto& last = (d.MemberEnd() - 1);
    rapidjson::Value name(last->name, d.GetAllocator());
    rapidjson::Value val(last->value, d.GetAllocator());
    d.AddMember(name, val, d.GetAllocator());
    refused(serialize(d));
  }

  // Each field missing, and each field of the wrong type.
  std::vector<std::string> names;
  for (const auto& m : doc.GetObject()) names.emplace_back(m.name.GetString());
  for (const auto& name : names) {
    CAPTURE(name);
    // Fields added after rows were first written may be missing (older rows); the others not.
    const bool added_later =
        name == "max_priority" || name == "residency_regions" || name == "residency_tags";
    if (name != "v" && !added_later) {
      refused(edited([&](rapidjson::Document& d) { d.RemoveMember(name.c_str()); }));
    }
    refused(edited([&](rapidjson::Document& d) {
      auto& v = d[name.c_str()];
      if (v.IsObject()) {
        v.SetArray();
      } else {
        v.SetObject();
      }
    }));
    refused(edited([&](rapidjson::Document& d) {
      auto& v = d[name.c_str()];
      if (v.IsString()) {
        v.SetInt(1);
      } else {
        v.SetString("1");
      }
    }));
    // The same for the fields of nested limits objects.
    if (doc[name.c_str()].IsObject() && doc[name.c_str()].HasMember("rpm")) {
      for (const auto& lk : limits_keys) {
        refused(edited([&](rapidjson::Document& d) { d[name.c_str()].RemoveMember(lk.c_str()); }));
        refused(edited([&](rapidjson::Document& d) {
          auto& v = d[name.c_str()][lk.c_str()];
          if (v.IsString()) {
            v.SetString("medium");
          } else {
            v.SetString("1");
          }
        }));
      }
    }
  }
}

template <class T>
void check_round_trip(const T& value) {
  const std::string row = encode(value);
  T back{};
  REQUIRE_MESSAGE(decode(row, back), row);
  CHECK(back == value);
  CHECK(encode(back) == row);
}

}  // namespace

TEST_CASE("rows: tenant round trip and refusals") {
  check_round_trip(full_tenant());
  check_round_trip(tenant{});
  const tenant t = full_tenant();
  const auto d = parse(encode(t));
  CHECK(std::string(d["model_limits"]["gpt-4*"]["budget_mode"].GetString()) == "soft");
  check_row_refusals(t);
  // A model_limits entry must itself be a whole limits object.
  tenant x;
  CHECK_FALSE(
      decode(R"({"v":1,"id":"a","name":"","currency":"CNY","price_factor":1.0,"cache_scope":"",)"
             R"("priority":2,"limits":{"rpm":0,"rpd":0,"tpm":0,"max_concurrent":0,"burst_pct":0,)"
             R"("daily_budget":0.0,"monthly_budget":0.0,"budget_mode":"hard"},)"
             R"("model_limits":{"m":{"rpm":1}},"disabled":false,"created_at":0})",
             x));
  CHECK(x == tenant{});
}

TEST_CASE("rows: project round trip and refusals") {
  check_round_trip(full_project());
  check_round_trip(project{});
  check_row_refusals(full_project());
}

TEST_CASE("rows: api_key round trip (hash included) and refusals") {
  const api_key k = full_key();
  check_round_trip(k);
  check_round_trip(api_key{});
  api_key empty_lists = k;
  empty_lists.allowed_models.clear();
  empty_lists.allowed_endpoints.clear();
  check_round_trip(empty_lists);
  const auto d = parse(encode(k));
  CHECK(std::string(d["hash"].GetString()) == k.hash);
  CHECK(std::string(d["prefix"].GetString()) == k.prefix);
  CHECK_FALSE(d.HasMember("status"));
  check_row_refusals(k);
  // A list holding a non-string.
  std::string row = encode(k);
  const auto at = row.find(R"(["chat","embeddings"])");
  REQUIRE(at != std::string::npos);
  row.replace(at, 21, R"(["chat",7])");
  api_key x;
  CHECK_FALSE(decode(row, x));
}

TEST_CASE("rows: rows written before a field was added load with its default") {
  // A key row as session 6's nodes wrote it: no max_priority.
  api_key k = full_key();
  std::string row = encode(k);
  const auto at = row.find(R"(,"max_priority":1)");
  REQUIRE(at != std::string::npos);
  row.erase(at, 17);
  api_key x;
  REQUIRE(decode(row, x));
  CHECK(x.max_priority == 4);
  CHECK(x.priority == k.priority);
  CHECK(x.hash == k.hash);
  // A tenant row without residency.
  tenant t = full_tenant();
  std::string trow = encode(t);
  for (const char* f :
       {R"(,"residency_regions":["cn-east","cn-north"])", R"(,"residency_tags":["pipl"])"}) {
    const auto p = trow.find(f);
    REQUIRE(p != std::string::npos);
    trow.erase(p, std::string_view(f).size());
  }
  tenant y;
  REQUIRE(decode(trow, y));
  CHECK(y.residency_regions.empty());
  CHECK(y.residency_tags.empty());
  CHECK(y.id == t.id);
}

TEST_CASE("model_split: apply, view and rows") {
  model_split sp;
  sp.group = "chat";
  field_error fe;
  REQUIRE(apply(R"({"weights":{"sim-a":90,"sim-b":10}})", sp, fe));
  CHECK(sp.weights == std::map<std::string, uint32_t>{{"sim-a", 90}, {"sim-b", 10}});
  CHECK(sp.group == "chat");
  model_split bad = sp;
  CHECK_FALSE(apply(R"({"weights":{"sim-a":0}})", bad, fe));
  CHECK(fe.param == "weights");
  CHECK_FALSE(apply(R"({"weights":{}})", bad, fe));
  CHECK_FALSE(apply(R"({"weights":{"sim-a":-1}})", bad, fe));
  CHECK(fe.param == "weights.sim-a");
  CHECK_FALSE(apply(R"({"weights":{"sim-a":1000001}})", bad, fe));
  CHECK_FALSE(apply(R"({"weights":[1]})", bad, fe));
  CHECK_FALSE(apply(R"({"group":"other","weights":{"a":1}})", bad, fe));
  CHECK(fe.param == "group");
  CHECK_FALSE(apply(R"({"weight":{"a":1}})", bad, fe));
  CHECK(bad == sp);  // all or nothing
  sp.updated_at = 1763769600;
  const auto d = parse(to_json(sp));
  CHECK(std::string(d["object"].GetString()) == "model_split");
  CHECK(d["weights"]["sim-b"].GetUint() == 10);
  check_round_trip(sp);
  check_round_trip(model_split{});
  check_row_refusals(sp);
}

TEST_CASE("rows: admin_token round trip and refusals") {
  for (role r : {role::viewer, role::operator_, role::owner}) {
    admin_token a = full_admin();
    a.level = r;
    check_round_trip(a);
  }
  check_round_trip(admin_token{});
  check_row_refusals(full_admin());
  std::string row = encode(full_admin());
  const auto at = row.find(R"("operator")");
  REQUIRE(at != std::string::npos);
  row.replace(at, 10, R"("root")");
  admin_token x;
  CHECK_FALSE(decode(row, x));
}

TEST_CASE("rows: price round trip and refusals") {
  check_round_trip(full_price());
  check_round_trip(price{});
  check_row_refusals(full_price());
}

TEST_CASE("rows: doubles round trip bit for bit") {
  // Hard cases by hand, then 20,000 pseudo-random bit patterns (fixed seed).
  std::vector<double> values = {0.0,
                                -0.0,
                                0.1,
                                0.2,
                                0.3,
                                1.0 / 3.0,
                                2.0 / 3.0,
                                1e-300,
                                5e-324,
                                DBL_MIN,
                                DBL_MAX,
                                1e21,
                                1e22,
                                1e23,
                                9007199254740993.0,
                                123456789.123456789,
                                0.30000000000000004,
                                2.2250738585072011e-308};
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  while (values.size() < 20'000) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    double d;
    std::memcpy(&d, &state, sizeof d);
    if (std::isfinite(d)) values.push_back(d);
  }
  int mismatches = 0;
  for (std::size_t i = 0; i + 2 < values.size(); i += 3) {
    price p;
    p.input_per_m = values[i];
    p.cached_input_per_m = values[i + 1];
    p.output_per_m = values[i + 2];
    price back;
    if (!decode(encode(p), back) ||
        std::memcmp(&back.input_per_m, &p.input_per_m, sizeof(double)) != 0 ||
        std::memcmp(&back.cached_input_per_m, &p.cached_input_per_m, sizeof(double)) != 0 ||
        std::memcmp(&back.output_per_m, &p.output_per_m, sizeof(double)) != 0) {
      ++mismatches;
      if (mismatches < 5) MESSAGE("no round trip: " << encode(p));
    }
  }
  CHECK(mismatches == 0);

  // Budgets and price factors go the same way.
  tenant t;
  t.price_factor = 0.1 + 0.2;
  t.limit.daily_budget = 1.0 / 7.0;
  t.limit.monthly_budget = 5e-324;
  check_round_trip(t);
}
