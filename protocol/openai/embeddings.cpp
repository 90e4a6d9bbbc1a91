#include "protocol/openai/embeddings.hpp"

#include <cmath>
#include <cstring>
#include <memory>

#include "protocol/openai/json_document.hpp"
#include "protocol/openai/json_text.hpp"

namespace tc::openai {

namespace {

/// The value of one base64 character; -1 for anything else (padding included).
int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

/// Decodes standard or URL-safe base64, with or without padding. False on anything else.
bool base64_decode(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out.clear();
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = base64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

/// One `embedding` value: an array of numbers, or base64 of little-endian float32s.
bool read_vector(const rapidjson::Value& v, uint32_t dimension, std::vector<float>& out,
                 std::string& error) {
  out.clear();
  if (v.IsArray()) {
    if (v.Size() != dimension) return error = "dimension", false;
    out.reserve(dimension);
    for (const auto& x : v.GetArray()) {
      if (!x.IsNumber()) return error = "value", false;
      out.push_back(static_cast<float>(x.GetDouble()));
    }
  } else if (v.IsString()) {
    std::string bytes;
    if (!base64_decode(std::string_view(v.GetString(), v.GetStringLength()), bytes) ||
        bytes.size() % 4 != 0)
      return error = "value", false;
    if (bytes.size() / 4 != dimension) return error = "dimension", false;
    out.resize(dimension);
    for (uint32_t k = 0; k < dimension; ++k) {
      uint32_t bits = 0;
      for (int b = 3; b >= 0; --b)
        bits = (bits << 8) | static_cast<unsigned char>(bytes[k * 4 + b]);
      std::memcpy(&out[k], &bits, 4);
    }
  } else {
    return error = "bad_json", false;
  }
  for (float f : out)
    if (!std::isfinite(f)) return error = "value", false;
  return true;
}

}  // namespace

std::string embeddings_body(std::string_view model, const std::vector<std::string>& texts,
                            uint32_t dimensions) {
  size_t size = 64 + model.size();
  for (const auto& t : texts) size += t.size() + 8;
  std::string out;
  out.reserve(size);
  out += "{\"model\":";
  json_text::append_string(out, model);
  out += ",\"input\":[";
  for (size_t i = 0; i < texts.size(); ++i) {
    if (i != 0) out += ',';
    json_text::append_string(out, texts[i]);
  }
  out += ']';
  if (dimensions != 0) {
    out += ",\"dimensions\":";
    out += std::to_string(dimensions);
  }
  out += '}';  // encoding_format left out: float is the default, and not every server takes it
  return out;
}

bool parse_embeddings(std::string_view json, size_t count, uint32_t dimension,
                      std::vector<std::vector<float>>& out, std::string& error) {
  auto holder = std::make_unique<stack_document>();  // answers can be large: not on the stack
  rapidjson::Document& doc = holder->doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) return error = "bad_json", false;
  auto data = doc.FindMember("data");
  if (data == doc.MemberEnd() || !data->value.IsArray()) return error = "bad_json", false;
  if (data->value.Size() != count) return error = "count", false;
  out.assign(count, {});
  std::vector<bool> seen(count, false);
  for (const auto& item : data->value.GetArray()) {
    if (!item.IsObject()) return error = "bad_json", false;
    auto index = item.FindMember("index");
    auto embedding = item.FindMember("embedding");
    if (index == item.MemberEnd() || !index->value.IsUint64() || embedding == item.MemberEnd())
      return error = "bad_json", false;
    const uint64_t i = index->value.GetUint64();
    if (i >= count || seen[i]) return error = "count", false;
    seen[i] = true;
    if (!read_vector(embedding->value, dimension, out[i], error)) return false;
  }
  return true;
}

bool l2_normalize(std::vector<float>& v) {
  double sum = 0;
  for (float f : v) {
    if (!std::isfinite(f)) return false;
    sum += static_cast<double>(f) * f;
  }
  if (sum <= 0) return true;
  const double scale = 1.0 / std::sqrt(sum);
  for (float& f : v) f = static_cast<float>(f * scale);
  return std::isfinite(scale);
}

}  // namespace tc::openai
