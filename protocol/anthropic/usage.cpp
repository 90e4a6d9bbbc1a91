#include "protocol/anthropic/usage.hpp"

#include "protocol/anthropic/json.hpp"

#include <algorithm>
#include <limits>

namespace tc::anthropic {

namespace {

uint32_t saturate(uint64_t v) {
  return static_cast<uint32_t>(std::min<uint64_t>(v, std::numeric_limits<uint32_t>::max()));
}

void take(const rapidjson::Value& u, std::string_view key, uint32_t& field) {
  const json::value* v = json::find(u, key);
  if (v != nullptr && v->IsNumber()) field = json::find_count(u, key);
}

}  // namespace

void usage::update(const rapidjson::Value& u) {
  if (!u.IsObject()) return;
  take(u, "input_tokens", input_tokens);
  take(u, "output_tokens", output_tokens);
  take(u, "cache_read_input_tokens", cache_read_input_tokens);
  take(u, "cache_creation_input_tokens", cache_creation_input_tokens);
}

uint32_t usage::prompt_tokens() const {
  return saturate(uint64_t{input_tokens} + cache_read_input_tokens + cache_creation_input_tokens);
}

void usage::append_openai(std::string& out) const {
  const uint32_t prompt = prompt_tokens();
  out += R"({"prompt_tokens":)";
  json::append_uint(out, prompt);
  out += R"(,"completion_tokens":)";
  json::append_uint(out, output_tokens);
  out += R"(,"total_tokens":)";
  json::append_uint(out, saturate(uint64_t{prompt} + output_tokens));
  out += R"(,"prompt_tokens_details":{"cached_tokens":)";
  json::append_uint(out, cache_read_input_tokens);
  out += "}}";
}

}  // namespace tc::anthropic
