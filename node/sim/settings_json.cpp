// sim_settings <-> JSON. See settings_json.hpp.
#include "node/sim/settings_json.hpp"

#include <charconv>
#include <cmath>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace tc::sim {
namespace {

bool read_double(const rapidjson::Value& v, double lo, double hi, double& out) {
  if (!v.IsNumber()) return false;
  double d = v.GetDouble();
  if (!std::isfinite(d) || d < lo || d > hi) return false;
  out = d;
  return true;
}

bool read_u32(const rapidjson::Value& v, uint32_t lo, uint32_t hi, uint32_t& out) {
  if (!v.IsUint64() || v.GetUint64() < lo || v.GetUint64() > hi) return false;
  out = static_cast<uint32_t>(v.GetUint64());
  return true;
}

bool read_outage(const rapidjson::Value& v, config::sim_outage& o) {
  if (v.IsString()) return parse_outage({v.GetString(), v.GetStringLength()}, o);
  if (!v.IsObject()) return false;
  auto s = v.FindMember("start_s");
  auto e = v.FindMember("end_s");
  if (s == v.MemberEnd() || e == v.MemberEnd() || v.MemberCount() != 2) return false;
  return read_double(s->value, 0, 1e9, o.start_s) && read_double(e->value, 0, 1e9, o.end_s) &&
         o.start_s < o.end_s;
}

}  // namespace

std::string settings_to_json(const config::sim_settings& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("ttft_ms");
  w.Double(s.ttft_ms);
  w.Key("tokens_per_sec");
  w.Double(s.tokens_per_sec);
  w.Key("max_batch");
  w.Uint(s.max_batch);
  w.Key("batch_contention");
  w.Double(s.batch_contention);
  w.Key("default_max_tokens");
  w.Uint(s.default_max_tokens);
  w.Key("embedding_dim");
  w.Uint(s.embedding_dim);
  w.Key("prefix_cache_entries");
  w.Uint(s.prefix_cache_entries);
  w.Key("error_rate");
  w.Double(s.error_rate);
  w.Key("error_status");
  w.Uint(s.error_status);
  w.Key("spike_rate");
  w.Double(s.spike_rate);
  w.Key("spike_ms");
  w.Double(s.spike_ms);
  w.Key("outages");
  w.StartArray();
  for (const auto& o : s.outages) {
    w.StartObject();
    w.Key("start_s");
    w.Double(o.start_s);
    w.Key("end_s");
    w.Double(o.end_s);
    w.EndObject();
  }
  w.EndArray();
  w.Key("seed");
  w.Uint64(s.seed);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

bool apply_settings_json(std::string_view json, config::sim_settings& s, std::string& error) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    error = "the body must be a JSON object";
    return false;
  }
  config::sim_settings n = s;
  for (const auto& m : doc.GetObject()) {
    std::string_view k(m.name.GetString(), m.name.GetStringLength());
    const rapidjson::Value& v = m.value;
    bool ok = false;
    if (k == "ttft_ms") {
      ok = read_double(v, 0, 3.6e6, n.ttft_ms);
    } else if (k == "tokens_per_sec") {
      ok = read_double(v, 0, 1e7, n.tokens_per_sec);
    } else if (k == "max_batch") {
      ok = read_u32(v, 1, 1'000'000, n.max_batch);
    } else if (k == "batch_contention") {
      ok = read_double(v, 0, 100, n.batch_contention);
    } else if (k == "default_max_tokens") {
      ok = read_u32(v, 1, 1'000'000, n.default_max_tokens);
    } else if (k == "embedding_dim") {
      ok = read_u32(v, 1, 65536, n.embedding_dim);
    } else if (k == "prefix_cache_entries") {
      ok = read_u32(v, 0, 1'000'000, n.prefix_cache_entries);
    } else if (k == "error_rate") {
      ok = read_double(v, 0, 1, n.error_rate);
    } else if (k == "error_status") {
      ok = read_u32(v, 400, 599, n.error_status);
    } else if (k == "spike_rate") {
      ok = read_double(v, 0, 1, n.spike_rate);
    } else if (k == "spike_ms") {
      ok = read_double(v, 0, 3.6e6, n.spike_ms);
    } else if (k == "seed") {
      ok = v.IsUint64();
      if (ok) n.seed = v.GetUint64();
    } else if (k == "outages") {
      ok = v.IsArray();
      n.outages.clear();
      for (rapidjson::SizeType i = 0; ok && i < v.Size(); ++i) {
        config::sim_outage w;
        ok = read_outage(v[i], w);
        if (ok) n.outages.push_back(w);
      }
    } else {
      error = "unknown setting '" + std::string(k) + "'";
      return false;
    }
    if (!ok) {
      error = "bad value for '" + std::string(k) + "'";
      return false;
    }
  }
  s = std::move(n);
  return true;
}

bool parse_outage(std::string_view spec, config::sim_outage& out) {
  auto colon = spec.find(':');
  if (colon == std::string_view::npos) return false;
  auto parse = [](std::string_view t, double& d) {
    auto r = std::from_chars(t.data(), t.data() + t.size(), d);
    return r.ec == std::errc() && r.ptr == t.data() + t.size() && std::isfinite(d) && d >= 0;
  };
  config::sim_outage o;
  if (!parse(spec.substr(0, colon), o.start_s) || !parse(spec.substr(colon + 1), o.end_s) ||
      o.start_s >= o.end_s)
    return false;
  out = o;
  return true;
}

}  // namespace tc::sim
