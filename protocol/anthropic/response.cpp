// Anthropic Messages API response -> OpenAI chat.completion.
#include "protocol/anthropic/response.hpp"

#include "protocol/anthropic/error.hpp"
#include "protocol/anthropic/json.hpp"
#include "protocol/anthropic/usage.hpp"
#include "protocol/openai/json_document.hpp"

#include <utility>

namespace tc::anthropic {

namespace {

using json::find;
using json::str;
using json::value;

openai::api_error malformed(std::string_view why) {
  std::string msg = "The Anthropic upstream sent a malformed message: ";
  msg.append(why);
  msg += '.';
  return openai::upstream_error(std::move(msg));
}

}  // namespace

std::string_view finish_reason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";
}

std::variant<std::string, openai::api_error> to_chat_completion(std::string_view body,
                                                                std::string_view model,
                                                                int64_t created) {
  openai::stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  if (json::parse(body, doc) != json::parse_status::ok || !doc.IsObject()) {
    return malformed("the body is not a JSON object");
  }
  const std::string_view type = json::find_string(doc, "type");
  if (type == "error") return to_openai_error(502, body);
  if (type != "message") return malformed("\"type\" is not \"message\"");
  const value* content = find(doc, "content");
  if (content == nullptr || !content->IsArray()) return malformed("\"content\" is not an array");

  std::string text;
  bool has_text = false;
  std::string calls;
  std::size_t n_calls = 0;
  for (const auto& block : content->GetArray()) {
    if (!block.IsObject()) return malformed("a content block is not an object");
    const std::string_view bt = json::find_string(block, "type");
    if (bt == "text") {
      const value* t = find(block, "text");
      if (t == nullptr || !t->IsString()) return malformed("a text block has no text");
      text.append(str(*t));
      has_text = true;
    } else if (bt == "tool_use") {
      const value* input = find(block, "input");
      const std::string_view id = json::find_string(block, "id");
      const std::string_view name = json::find_string(block, "name");
      if (id.empty() || name.empty()) return malformed("a tool_use block has no id or name");
      if (n_calls++ > 0) calls += ',';
      calls += R"({"id":)";
      json::append_string(calls, id);
      calls += R"(,"type":"function","function":{"name":)";
      json::append_string(calls, name);
      calls += R"(,"arguments":)";
      std::string args;
      if (input == nullptr || input->IsNull()) {
        args = "{}";
      } else {
        json::append_value(args, *input);
      }
      json::append_string(calls, args);
      calls += "}}";
    }
    // thinking, redacted_thinking, server_tool_use, web_search_tool_result, ...: dropped.
  }

  const std::string_view id = json::find_string(doc, "id");
  const std::string_view stop = json::find_string(doc, "stop_reason");
  usage u;
  if (const value* uv = find(doc, "usage"); uv != nullptr) u.update(*uv);

  std::string out = R"({"id":)";
  json::append_string(out, std::string("chatcmpl-").append(id));
  out += R"(,"object":"chat.completion","created":)";
  json::append_int(out, created);
  out += R"(,"model":)";
  json::append_string(out, model);
  out += R"(,"choices":[{"index":0,"message":{"role":"assistant","content":)";
  if (has_text || n_calls == 0) {
    json::append_string(out, text);
  } else {
    out += "null";
  }
  if (n_calls > 0) {
    out += R"(,"tool_calls":[)";
    out += calls;
    out += ']';
  }
  out += R"(,"refusal":null},"logprobs":null,"finish_reason":)";
  json::append_string(out, finish_reason(stop));
  out += R"(}],"usage":)";
  u.append_openai(out);
  out += '}';
  return out;
}

}  // namespace tc::anthropic
