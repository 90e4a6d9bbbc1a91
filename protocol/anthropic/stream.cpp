// Anthropic Messages stream -> OpenAI chat.completion.chunk payloads.
#include "protocol/anthropic/stream.hpp"

#include "protocol/anthropic/error.hpp"
#include "protocol/anthropic/json.hpp"
#include "protocol/anthropic/response.hpp"
#include "protocol/openai/json_document.hpp"

#include <utility>

namespace tc::anthropic {

namespace {

using json::find;
using json::str;
using json::value;

constexpr uint64_t max_blocks = 4096;  ///< content blocks per message

/// The block index of a content_block_* event, or -1 if missing or out of range.
int64_t block_index(const value& ev) {
  const value* i = find(ev, "index");
  if (i == nullptr || !i->IsUint64() || i->GetUint64() >= max_blocks) return -1;
  return static_cast<int64_t>(i->GetUint64());
}

}  // namespace

stream_translator::stream_translator(std::string model, int64_t created, bool include_usage)
    : model_(std::move(model)), created_(created), include_usage_(include_usage) {}

openai::usage stream_translator::usage() const {
  openai::usage u;
  u.prompt_tokens = usage_.prompt_tokens();
  u.completion_tokens = usage_.output_tokens;
  const uint64_t total = uint64_t{u.prompt_tokens} + u.completion_tokens;
  u.total_tokens = total > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(total);
  u.cached_tokens = usage_.cache_read_input_tokens;
  return u;
}

stream_translator::status stream_translator::fail(openai::api_error e) {
  error_ = std::move(e);
  state_ = status::failed;
  return state_;
}

std::string stream_translator::chunk(std::string_view delta, std::string_view finish) const {
  std::string out = R"({"id":)";
  json::append_string(out, id_);
  out += R"(,"object":"chat.completion.chunk","created":)";
  json::append_int(out, created_);
  out += R"(,"model":)";
  json::append_string(out, model_);
  out += R"(,"choices":[{"index":0,"delta":)";
  out += delta;
  out += R"(,"logprobs":null,"finish_reason":)";
  if (finish.empty()) {
    out += "null";
  } else {
    json::append_string(out, finish);
  }
  out += "}]";
  if (include_usage_) out += R"(,"usage":null)";
  out += '}';
  return out;
}

stream_translator::status stream_translator::feed(std::string_view event, std::string_view data,
                                                  std::vector<std::string>& out) {
  if (state_ != status::more) return state_;
  if (event == "ping" && data.empty()) return state_;
  openai::stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  if (json::parse(data, doc) != json::parse_status::ok || !doc.IsObject()) {
    return fail(openai::upstream_error("The Anthropic upstream sent a malformed stream event."));
  }
  std::string_view type = json::find_string(doc, "type");
  if (type.empty()) type = event;

  if (type == "error") return fail(to_openai_error(500, data));
  if (type == "ping") return state_;
  if (type == "message_start") {
    if (started_) {
      return fail(openai::upstream_error("The Anthropic upstream started a message twice."));
    }
    started_ = true;
    const value* msg = find(doc, "message");
    id_ = "chatcmpl-";
    if (msg != nullptr) {
      id_.append(json::find_string(*msg, "id"));
      if (const value* u = find(*msg, "usage"); u != nullptr) usage_.update(*u);
    }
    out.push_back(chunk(R"({"role":"assistant","content":""})"));
    return state_;
  }
  const bool known = type == "content_block_start" || type == "content_block_delta" ||
                     type == "content_block_stop" || type == "message_delta" ||
                     type == "message_stop";
  if (!known) return state_;  // Anthropic may add event types: ignore them
  if (!started_) {
    return fail(
        openai::upstream_error("The Anthropic upstream sent a stream event before message_start."));
  }

  if (type == "content_block_start") {
    const int64_t index = block_index(doc);
    const value* block = find(doc, "content_block");
    if (index < 0 || block == nullptr || !block->IsObject()) {
      return fail(openai::upstream_error(
          "The Anthropic upstream sent a malformed content_block_start event."));
    }
    const std::string_view bt = json::find_string(*block, "type");
    if (tool_of_block_.size() <= static_cast<std::size_t>(index)) {
      tool_of_block_.resize(static_cast<std::size_t>(index) + 1, -1);
    }
    if (bt == "text") {
      const std::string_view text = json::find_string(*block, "text");
      if (!text.empty()) {
        std::string delta = R"({"content":)";
        json::append_string(delta, text);
        delta += '}';
        out.push_back(chunk(delta));
      }
    } else if (bt == "tool_use") {
      const std::string_view id = json::find_string(*block, "id");
      const std::string_view name = json::find_string(*block, "name");
      if (id.empty() || name.empty()) {
        return fail(
            openai::upstream_error("The Anthropic upstream sent a tool_use without id or name."));
      }
      const int32_t tool = next_tool_++;
      tool_of_block_[static_cast<std::size_t>(index)] = tool;
      // The input normally arrives as input_json_delta pieces; a non-empty input in the start
      // event (not seen in Anthropic's streams) is sent as the first piece of the arguments.
      std::string args;
      const value* input = find(*block, "input");
      if (input != nullptr && input->IsObject() && input->MemberCount() > 0) {
        json::append_value(args, *input);
      }
      std::string delta = R"({"tool_calls":[{"index":)";
      json::append_int(delta, tool);
      delta += R"(,"id":)";
      json::append_string(delta, id);
      delta += R"(,"type":"function","function":{"name":)";
      json::append_string(delta, name);
      delta += R"(,"arguments":)";
      json::append_string(delta, args);
      delta += "}}]}";
      out.push_back(chunk(delta));
    }
    // thinking, redacted_thinking, server_tool_use, ...: nothing.
    return state_;
  }

  if (type == "content_block_delta") {
    const int64_t index = block_index(doc);
    const value* delta = find(doc, "delta");
    if (index < 0 || delta == nullptr || !delta->IsObject()) {
      return fail(openai::upstream_error(
          "The Anthropic upstream sent a malformed content_block_delta event."));
    }
    const std::string_view dt = json::find_string(*delta, "type");
    if (dt == "text_delta") {
      const std::string_view text = json::find_string(*delta, "text");
      if (!text.empty()) {
        std::string d = R"({"content":)";
        json::append_string(d, text);
        d += '}';
        out.push_back(chunk(d));
      }
    } else if (dt == "input_json_delta") {
      const auto i = static_cast<std::size_t>(index);
      const int32_t tool = i < tool_of_block_.size() ? tool_of_block_[i] : -1;
      const std::string_view piece = json::find_string(*delta, "partial_json");
      if (tool >= 0 && !piece.empty()) {  // a server tool's input is not the client's
        std::string d = R"({"tool_calls":[{"index":)";
        json::append_int(d, tool);
        d += R"(,"function":{"arguments":)";
        json::append_string(d, piece);
        d += "}}]}";
        out.push_back(chunk(d));
      }
    }
    // thinking_delta, signature_delta, citations_delta: nothing.
    return state_;
  }

  if (type == "message_delta") {
    if (const value* u = find(doc, "usage"); u != nullptr) usage_.update(*u);
    const value* delta = find(doc, "delta");
    const std::string_view stop =
        delta != nullptr ? json::find_string(*delta, "stop_reason") : std::string_view{};
    if (!stop.empty() && !finished_) {
      finished_ = true;
      out.push_back(chunk("{}", finish_reason(stop)));
    }
    return state_;
  }

  if (type == "message_stop") {
    if (!finished_) {
      finished_ = true;
      out.push_back(chunk("{}", finish_reason({})));
    }
    if (include_usage_) {
      std::string u = R"({"id":)";
      json::append_string(u, id_);
      u += R"(,"object":"chat.completion.chunk","created":)";
      json::append_int(u, created_);
      u += R"(,"model":)";
      json::append_string(u, model_);
      u += R"(,"choices":[],"usage":)";
      usage_.append_openai(u);
      u += '}';
      out.push_back(std::move(u));
    }
    state_ = status::done;
    return state_;
  }
  return state_;  // content_block_stop
}

}  // namespace tc::anthropic
