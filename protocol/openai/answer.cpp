#include "protocol/openai/answer.hpp"

#include <memory>

#include "protocol/openai/json_document.hpp"

namespace tc::openai {

bool answer_cacheable(std::string_view json) {
  auto holder = std::make_unique<stack_document>();  // answers can be large: not on the stack
  rapidjson::Document& doc = holder->doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject() || doc.HasMember("error")) return false;
  auto choices = doc.FindMember("choices");
  if (choices != doc.MemberEnd()) {
    if (!choices->value.IsArray() || choices->value.Empty()) return false;
    for (const auto& c : choices->value.GetArray()) {
      if (!c.IsObject()) return false;
      auto fr = c.FindMember("finish_reason");
      if (fr == c.MemberEnd() || !fr->value.IsString()) return false;
      std::string_view reason(fr->value.GetString(), fr->value.GetStringLength());
      if (reason == "length" || reason == "content_filter") return false;
    }
    return true;
  }
  auto data = doc.FindMember("data");
  return data != doc.MemberEnd() && data->value.IsArray() && !data->value.Empty();
}

}  // namespace tc::openai
