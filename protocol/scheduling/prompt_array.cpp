// prompt_array dispatch: see prompt_array.hpp.
#include "protocol/scheduling/prompt_array.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "protocol/canonical/canonical.hpp"
#include "protocol/canonical/hash.hpp"
#include "protocol/tokens.hpp"

namespace tc::scheduling {

namespace {

using json = rapidjson::Value;

bool named(const json& name, std::string_view s) {
  return name.GetStringLength() == s.size() &&
         std::memcmp(name.GetString(), s.data(), s.size()) == 0;
}

std::string_view text_of(const json& v) {
  return {v.GetString(), v.GetStringLength()};
}

std::string write(const json& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

/// `n` or `best_of`: absent, null or the integer 1.
bool one_or_absent(const json& v) {
  return v.IsNull() || (v.IsInt64() && v.GetInt64() == 1);
}

bool parse(rapidjson::Document& doc, std::string_view body) {
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  return !doc.HasParseError() && doc.IsObject();
}

}  // namespace

bool mergeable_completion(std::string_view body, mergeable_prompt& out) {
  rapidjson::Document doc;
  if (!parse(doc, body)) return false;
  const json* prompt = nullptr;
  rapidjson::Document rest(rapidjson::kObjectType);
  for (auto& m : doc.GetObject()) {
    if (named(m.name, "prompt")) {
      prompt = &m.value;
      continue;
    }
    if (named(m.name, "user")) continue;
    if (named(m.name, "stream") && !(m.value.IsNull() || m.value.IsFalse())) return false;
    if (named(m.name, "n") || named(m.name, "best_of")) {
      if (!one_or_absent(m.value)) return false;
      continue;  // 1 and absent are the same request
    }
    rest.AddMember(json(m.name, rest.GetAllocator()), json(m.value, rest.GetAllocator()),
                   rest.GetAllocator());
  }
  if (prompt != nullptr && prompt->IsArray() && prompt->Size() == 1) prompt = &(*prompt)[0];
  if (prompt == nullptr || !prompt->IsString()) return false;
  std::string canonical;
  if (!canonical::canonical_json(write(rest), canonical)) return false;
  out.key = canonical::hasher{}.add("tc.merge.v1").add(canonical).finish().hi;
  out.prompt = write(*prompt);
  out.weight = std::max<uint32_t>(1, estimate_tokens(text_of(*prompt)));
  return true;
}

std::string merged_body(std::string_view member_body, const std::vector<std::string>& prompts) {
  rapidjson::Document doc;
  if (!parse(doc, member_body)) return {};
  doc.RemoveMember("user");
  doc.RemoveMember("prompt");
  // The prompts are JSON string literals already: spliced in as they are.
  std::string head = write(doc);
  head.pop_back();  // the closing brace
  if (head.size() > 1) head += ',';
  head += "\"prompt\":[";
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (i != 0) head += ',';
    head += prompts[i];
  }
  head += "]}";
  return head;
}

std::vector<uint32_t> share(uint32_t total, const std::vector<uint32_t>& weights) {
  const size_t k = weights.size();
  std::vector<uint32_t> parts(k, 0);
  if (k == 0) return parts;
  uint64_t sum = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
  std::vector<uint64_t> w(weights.begin(), weights.end());
  if (sum == 0) {
    std::fill(w.begin(), w.end(), 1);
    sum = k;
  }
  std::vector<std::pair<uint64_t, size_t>> rest;  // remainder, index
  uint64_t given = 0;
  for (size_t i = 0; i < k; ++i) {
    const uint64_t exact = uint64_t{total} * w[i];
    parts[i] = static_cast<uint32_t>(exact / sum);
    given += parts[i];
    rest.emplace_back(exact % sum, i);
  }
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t j = 0; given < total; ++j, ++given) ++parts[rest[j % k].second];
  return parts;
}

bool split_answer(std::string_view answer, const std::vector<uint32_t>& weights,
                  std::vector<split_part>& out, std::string& error) {
  out.clear();
  const size_t k = weights.size();
  rapidjson::Document doc;
  if (!parse(doc, answer)) {
    error = "the answer is not a JSON object";
    return false;
  }
  auto choices = doc.FindMember("choices");
  if (choices == doc.MemberEnd() || !choices->value.IsArray() || choices->value.Size() != k) {
    error = "the answer does not have one choice per prompt";
    return false;
  }
  std::vector<const json*> by_index(k, nullptr);
  for (const json& c : choices->value.GetArray()) {
    if (!c.IsObject()) {
      error = "a choice is not an object";
      return false;
    }
    auto index = c.FindMember("index");
    if (index == c.MemberEnd() || !index->value.IsUint64() || index->value.GetUint64() >= k ||
        by_index[index->value.GetUint64()] != nullptr) {
      error = "the choices' indices are not 0.." + std::to_string(k - 1) + ", each once";
      return false;
    }
    by_index[index->value.GetUint64()] = &c;
  }
  // The upstream's usage, shared out.
  openai::usage total;
  bool reported = false;
  if (auto u = doc.FindMember("usage"); u != doc.MemberEnd() && u->value.IsObject()) {
    auto get = [&](const json& obj, const char* name) -> uint32_t {
      auto f = obj.FindMember(name);
      return f != obj.MemberEnd() && f->value.IsUint() ? f->value.GetUint() : 0;
    };
    total.prompt_tokens = get(u->value, "prompt_tokens");
    total.completion_tokens = get(u->value, "completion_tokens");
    if (auto d = u->value.FindMember("prompt_tokens_details");
        d != u->value.MemberEnd() && d->value.IsObject())
      total.cached_tokens = get(d->value, "cached_tokens");
    reported = true;
  }
  std::vector<uint32_t> completion_weights(k);
  for (size_t i = 0; i < k; ++i) {
    auto t = by_index[i]->FindMember("text");
    completion_weights[i] = t != by_index[i]->MemberEnd() && t->value.IsString()
                                ? estimate_tokens(text_of(t->value))
                                : 0;
  }
  const std::vector<uint32_t> prompt = share(total.prompt_tokens, weights);
  const std::vector<uint32_t> cached = share(total.cached_tokens, weights);
  const std::vector<uint32_t> completion = share(total.completion_tokens, completion_weights);

  out.resize(k);
  for (size_t i = 0; i < k; ++i) {
    rapidjson::Document part(rapidjson::kObjectType);
    auto& a = part.GetAllocator();
    for (const auto& m : doc.GetObject()) {
      if (named(m.name, "choices")) {
        json one(rapidjson::kArrayType);
        json c(*by_index[i], a);
        c["index"].SetUint(0);
        one.PushBack(c, a);
        part.AddMember(json(m.name, a), one, a);
      } else if (named(m.name, "usage") && reported) {
        json u(rapidjson::kObjectType);
        u.AddMember("prompt_tokens", prompt[i], a);
        u.AddMember("completion_tokens", completion[i], a);
        u.AddMember("total_tokens", prompt[i] + completion[i], a);
        if (total.cached_tokens != 0) {
          json d(rapidjson::kObjectType);
          d.AddMember("cached_tokens", cached[i], a);
          u.AddMember("prompt_tokens_details", d, a);
        }
        part.AddMember(json(m.name, a), u, a);
      } else if (named(m.name, "id") && m.value.IsString()) {
        const std::string id = std::string(text_of(m.value)) + "-" + std::to_string(i);
        part.AddMember(json(m.name, a),
                       json(id.data(), static_cast<rapidjson::SizeType>(id.size()), a), a);
      } else {
        part.AddMember(json(m.name, a), json(m.value, a), a);
      }
    }
    out[i].body = write(part);
    out[i].usage_reported = reported;
    if (reported) {
      out[i].usage.prompt_tokens = prompt[i];
      out[i].usage.completion_tokens = completion[i];
      out[i].usage.total_tokens = prompt[i] + completion[i];
      out[i].usage.cached_tokens = cached[i];
    }
  }
  return true;
}

}  // namespace tc::scheduling
