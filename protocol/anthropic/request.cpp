// OpenAI chat completion request -> Anthropic Messages API request.
//
// Messages:
// - Leading system/developer messages become `system` (an array of text blocks). A
//   system/developer message later in the conversation is folded into the user turn as a text
//   block (Anthropic has no mid-conversation system role; refusing would fail requests that
//   other providers serve): it merges with the adjacent user turn like any user message.
// - Consecutive messages of the same Anthropic role are merged into one turn (Anthropic requires
//   alternation). Role "tool" messages become user tool_result blocks; within a user turn the
//   tool_result blocks come first, as Anthropic requires.
// - Empty text is never sent as a block (Anthropic refuses empty text blocks): an assistant
//   message with no content and no tool calls is dropped; an empty user message is refused.
// - image_url parts: data: URLs (;base64) -> a base64 source, http(s) URLs -> a url source.
// - Assistant tool_calls -> tool_use blocks; the arguments string must be a JSON object
//   (an empty string is taken as {}).
//
// Parameters: max_completion_tokens (or max_tokens, or options.max_tokens_default) ->
// max_tokens; temperature (OpenAI 0-2) is clamped to Anthropic's 0-1; top_p; stop (string or
// list) -> stop_sequences; stream; user -> metadata.user_id; tools, tool_choice,
// parallel_tool_calls=false -> tool_choice.disable_parallel_tool_use (tool_choice is sent only
// with tools). Refused (400 naming the param): n > 1, logprobs, top_logprobs > 0,
// response_format other than text, non-empty logit_bias, audio/modalities with audio, legacy
// functions/function_call, role "function", non-function tools, content parts other than
// text/image_url.
// Dropped without error (no Anthropic equivalent, or best-effort in OpenAI too): seed,
// presence_penalty, frequency_penalty, service_tier, store, metadata (OpenAI's stored-completion
// tags), prediction, reasoning_effort, verbosity, web_search_options, prompt_cache_key,
// safety_identifier, messages[].name, and any field not listed here.
//
// cache_control system_and_tools: {"type":"ephemeral"} on the last tool and the last system
// block (two of Anthropic's four breakpoints; the cached prefix is tools, then system). Never on
// an absent system or tool list.
#include "protocol/anthropic/request.hpp"

#include "protocol/anthropic/json.hpp"
#include "protocol/openai/json_document.hpp"

#include <optional>
#include <utility>
#include <vector>

namespace tc::anthropic {

namespace {

using json::find;
using json::str;
using json::value;
using openai::api_error;
using openai::invalid_request;

constexpr std::string_view ephemeral = R"(,"cache_control":{"type":"ephemeral"})";
constexpr int64_t max_tokens_limit = 10'000'000;

/// One Anthropic turn being built: merged messages of one role.
struct turn {
  bool user = true;
  std::vector<std::string> results;  ///< tool_result blocks (user turns; sent first)
  std::vector<std::string> blocks;   ///< other content blocks
};

std::string text_block(std::string_view text) {
  std::string b = R"({"type":"text","text":)";
  json::append_string(b, text);
  b += '}';
  return b;
}

std::string indexed(std::string_view base, std::size_t i) {
  std::string p(base);
  p += '[';
  p += std::to_string(i);
  p += ']';
  return p;
}

std::string refuse(std::string_view param, std::string_view why) {
  std::string msg = "The parameter '";
  msg.append(param);
  msg += "' is not supported by this model's provider (Anthropic): ";
  msg.append(why);
  msg += '.';
  return msg;
}

bool is_integer(const value& v) {
  return v.IsInt64() || v.IsUint64();
}

class translator {
 public:
  explicit translator(const request_options& options) : options_(options) {}

  std::optional<api_error> error;

  bool run(const value& doc, std::string_view model, messages_request& out);

 private:
  bool fail(std::string message, std::string param) {
    error = invalid_request(std::move(message), std::move(param));
    return false;
  }
  bool wrong_type(std::string param, std::string_view expected) {
    std::string msg = "Invalid type for '" + param + "': expected ";
    msg.append(expected);
    msg += '.';
    return fail(std::move(msg), std::move(param));
  }

  bool top_level(const value& doc, messages_request& out);
  bool messages(const value& list);
  bool texts(const value& content, const std::string& param, std::vector<std::string>& out,
             bool allow_refusal);
  bool user_parts(const value& content, const std::string& param, std::vector<std::string>& out);
  bool image(const value& part, const std::string& param, std::string& out);
  bool tool_calls(const value& calls, const std::string& param, std::vector<std::string>& out);
  bool tool_result(const value& msg, const std::string& param, std::string& out);
  bool tools(const value& list);
  bool tool_choice(const value& choice);
  void add(bool user, std::vector<std::string>&& blocks, bool result = false);
  std::string write(std::string_view model) const;

  const request_options& options_;
  const value* messages_ = nullptr;
  int64_t max_tokens_ = 0;
  std::optional<double> temperature_, top_p_;
  std::vector<std::string_view> stop_;
  bool stream_ = false;
  std::string_view user_;
  std::vector<std::string> system_;
  std::vector<turn> turns_;
  std::vector<std::string> tools_;
  std::string tool_choice_;  ///< the JSON object, without disable_parallel_tool_use
  bool no_parallel_ = false;
};

bool translator::top_level(const value& doc, messages_request& out) {
  std::optional<int64_t> max_tokens, max_completion_tokens;
  for (const auto& m : doc.GetObject()) {
    const std::string_view k = str(m.name);
    const value& v = m.value;
    const std::string key(k);
    if (k == "messages") {
      if (!v.IsArray()) return wrong_type(key, "an array");
      messages_ = &v;
      continue;
    }
    if (k == "model") {
      if (!v.IsString()) return wrong_type(key, "a string");
      continue;
    }
    if (v.IsNull()) continue;  // null means "not set" for every optional parameter
    if (k == "max_tokens" || k == "max_completion_tokens") {
      if (!is_integer(v)) return wrong_type(key, "an integer");
      if (!v.IsInt64() || v.GetInt64() < 1 || v.GetInt64() > max_tokens_limit) {
        return fail("Invalid '" + key + "': must be between 1 and " +
                        std::to_string(max_tokens_limit) + '.',
                    key);
      }
      (k == "max_tokens" ? max_tokens : max_completion_tokens) = v.GetInt64();
    } else if (k == "temperature") {
      if (!v.IsNumber()) return wrong_type(key, "a number");
      const double t = v.GetDouble();
      if (!(t >= 0 && t <= 2)) return fail("Invalid 'temperature': must be between 0 and 2.", key);
      temperature_ = t > 1 ? 1.0 : t;
    } else if (k == "top_p") {
      if (!v.IsNumber()) return wrong_type(key, "a number");
      const double p = v.GetDouble();
      if (!(p >= 0 && p <= 1)) return fail("Invalid 'top_p': must be between 0 and 1.", key);
      top_p_ = p;
    } else if (k == "stop") {
      if (v.IsString()) {
        if (v.GetStringLength() > 0) stop_.push_back(str(v));
      } else if (v.IsArray()) {
        for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
          if (!v[i].IsString()) return wrong_type(indexed("stop", i), "a string");
          if (v[i].GetStringLength() > 0) stop_.push_back(str(v[i]));
        }
      } else {
        return wrong_type(key, "a string or an array of strings");
      }
    } else if (k == "stream") {
      if (!v.IsBool()) return wrong_type(key, "a boolean");
      stream_ = v.GetBool();
    } else if (k == "stream_options") {
      if (!v.IsObject()) return wrong_type(key, "an object");
      if (const value* u = find(v, "include_usage"); u != nullptr && !u->IsNull()) {
        if (!u->IsBool()) return wrong_type("stream_options.include_usage", "a boolean");
        out.include_usage = u->GetBool();
      }
    } else if (k == "user") {
      if (!v.IsString()) return wrong_type(key, "a string");
      user_ = str(v);
    } else if (k == "tools") {
      if (!v.IsArray()) return wrong_type(key, "an array");
      if (!tools(v)) return false;
    } else if (k == "tool_choice") {
      if (!tool_choice(v)) return false;
    } else if (k == "parallel_tool_calls") {
      if (!v.IsBool()) return wrong_type(key, "a boolean");
      no_parallel_ = !v.GetBool();
    } else if (k == "n") {
      if (!is_integer(v)) return wrong_type(key, "an integer");
      if (!v.IsInt64() || v.GetInt64() < 1) return fail("Invalid 'n': must be at least 1.", key);
      if (v.GetInt64() > 1) return fail(refuse(k, "it returns one choice per request"), key);
    } else if (k == "logprobs") {
      if (!v.IsBool()) return wrong_type(key, "a boolean");
      if (v.GetBool()) return fail(refuse(k, "it does not return log probabilities"), key);
    } else if (k == "top_logprobs") {
      if (!is_integer(v)) return wrong_type(key, "an integer");
      if (!v.IsInt64() || v.GetInt64() != 0) {
        return fail(refuse(k, "it does not return log probabilities"), key);
      }
    } else if (k == "response_format") {
      if (!v.IsObject()) return wrong_type(key, "an object");
      const std::string_view type = json::find_string(v, "type");
      if (type != "text") {
        return fail(refuse("response_format",
                           "it has no JSON mode or structured outputs; "
                           "only {\"type\":\"text\"} can be translated"),
                    key);
      }
    } else if (k == "logit_bias") {
      if (!v.IsObject()) return wrong_type(key, "an object");
      if (v.MemberCount() > 0) return fail(refuse(k, "it has no token biasing"), key);
    } else if (k == "audio") {
      return fail(refuse(k, "it does not produce audio"), key);
    } else if (k == "modalities") {
      if (!v.IsArray()) return wrong_type(key, "an array");
      for (const auto& e : v.GetArray()) {
        if (e.IsString() && str(e) == "audio") {
          return fail(refuse(k, "it does not produce audio"), key);
        }
      }
    } else if (k == "functions" || k == "function_call") {
      return fail(refuse(k,
                         "the legacy function-calling parameters are not translated; "
                         "use 'tools' and 'tool_choice'"),
                  key);
    }
    // Anything else is dropped (see the file comment).
  }
  if (messages_ == nullptr) return fail("Missing required parameter: 'messages'.", "messages");
  max_tokens_ = max_completion_tokens ? *max_completion_tokens
                : max_tokens          ? *max_tokens
                                      : static_cast<int64_t>(options_.max_tokens_default);
  if (max_tokens_ < 1) max_tokens_ = 1;
  out.stream = stream_;
  return true;
}

bool translator::tools(const value& list) {
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const std::string param = indexed("tools", i);
    const value& t = list[i];
    if (!t.IsObject()) return wrong_type(param, "an object");
    const std::string_view type = json::find_string(t, "type");
    if (type != "function") {
      return fail(refuse(param + ".type", "only function tools can be translated"),
                  param + ".type");
    }
    const value* f = find(t, "function");
    if (f == nullptr || !f->IsObject()) return wrong_type(param + ".function", "an object");
    const value* name = find(*f, "name");
    if (name == nullptr || !name->IsString() || name->GetStringLength() == 0) {
      return wrong_type(param + ".function.name", "a non-empty string");
    }
    std::string b = R"({"name":)";
    json::append_string(b, str(*name));
    if (const value* d = find(*f, "description"); d != nullptr && !d->IsNull()) {
      if (!d->IsString()) return wrong_type(param + ".function.description", "a string");
      if (d->GetStringLength() > 0) {
        b += R"(,"description":)";
        json::append_string(b, str(*d));
      }
    }
    b += R"(,"input_schema":)";
    const value* schema = find(*f, "parameters");
    if (schema == nullptr || schema->IsNull()) {
      b += R"({"type":"object","properties":{}})";
    } else if (schema->IsObject()) {
      json::append_value(b, *schema);
    } else {
      return wrong_type(param + ".function.parameters", "an object");
    }
    b += '}';  // cache_control, if any, is added by write()
    tools_.push_back(std::move(b));
  }
  return true;
}

bool translator::tool_choice(const value& choice) {
  if (choice.IsString()) {
    const std::string_view c = str(choice);
    if (c == "auto") {
      tool_choice_ = R"({"type":"auto")";
    } else if (c == "none") {
      tool_choice_ = R"({"type":"none")";
    } else if (c == "required") {
      tool_choice_ = R"({"type":"any")";
    } else {
      return fail("Invalid 'tool_choice': expected 'none', 'auto', 'required' or a function.",
                  "tool_choice");
    }
    return true;
  }
  if (!choice.IsObject()) return wrong_type("tool_choice", "a string or an object");
  const value* f = find(choice, "function");
  const value* name = f != nullptr ? find(*f, "name") : nullptr;
  if (json::find_string(choice, "type") != "function" || name == nullptr || !name->IsString() ||
      name->GetStringLength() == 0) {
    return fail(
        "Invalid 'tool_choice': expected {\"type\":\"function\",\"function\":{\"name\":...}}.",
        "tool_choice");
  }
  tool_choice_ = R"({"type":"tool","name":)";
  json::append_string(tool_choice_, str(*name));
  return true;
}

void translator::add(bool user, std::vector<std::string>&& blocks, bool result) {
  if (turns_.empty() || turns_.back().user != user) turns_.push_back(turn{user, {}, {}});
  auto& dst = result ? turns_.back().results : turns_.back().blocks;
  for (auto& b : blocks) dst.push_back(std::move(b));
}

bool translator::texts(const value& content, const std::string& param,
                       std::vector<std::string>& out, bool allow_refusal) {
  if (content.IsNull()) return true;
  if (content.IsString()) {
    if (content.GetStringLength() > 0) out.push_back(text_block(str(content)));
    return true;
  }
  if (!content.IsArray()) return wrong_type(param, "a string or an array of content parts");
  for (rapidjson::SizeType i = 0; i < content.Size(); ++i) {
    const std::string p = indexed(param, i);
    const value& part = content[i];
    if (!part.IsObject()) return wrong_type(p, "an object");
    const std::string_view type = json::find_string(part, "type");
    const char* field = type == "text"                         ? "text"
                        : (allow_refusal && type == "refusal") ? "refusal"
                                                               : nullptr;
    if (field == nullptr) {
      return fail("Invalid content part type at '" + p + "': only text parts are accepted here.",
                  p + ".type");
    }
    const value* t = find(part, field);
    if (t == nullptr || !t->IsString()) return wrong_type(p + '.' + field, "a string");
    if (t->GetStringLength() > 0) out.push_back(text_block(str(*t)));
  }
  return true;
}

bool translator::image(const value& part, const std::string& param, std::string& out) {
  const value* iu = find(part, "image_url");
  const value* url = nullptr;
  if (iu != nullptr && iu->IsString()) {
    url = iu;
  } else if (iu != nullptr && iu->IsObject()) {
    url = find(*iu, "url");
  }
  if (url == nullptr || !url->IsString()) return wrong_type(param + ".image_url.url", "a string");
  const std::string_view u = str(*url);
  if (u.starts_with("data:")) {
    const std::size_t marker = u.find(";base64,");
    const std::string_view media = u.substr(5, marker == std::string_view::npos ? 0 : marker - 5);
    if (marker == std::string_view::npos || media.empty() ||
        media.find(',') != std::string_view::npos) {
      return fail("Invalid image data URL at '" + param +
                      ".image_url.url': expected data:<media type>;base64,<data>.",
                  param + ".image_url.url");
    }
    out = R"({"type":"image","source":{"type":"base64","media_type":)";
    json::append_string(out, media);
    out += R"(,"data":)";
    json::append_string(out, u.substr(marker + 8));
    out += "}}";
    return true;
  }
  if (u.starts_with("https://") || u.starts_with("http://")) {
    out = R"({"type":"image","source":{"type":"url","url":)";
    json::append_string(out, u);
    out += "}}";
    return true;
  }
  return fail("Invalid image URL at '" + param +
                  ".image_url.url': expected an http(s) URL or a base64 data URL.",
              param + ".image_url.url");
}

bool translator::user_parts(const value& content, const std::string& param,
                            std::vector<std::string>& out) {
  if (!content.IsArray()) return texts(content, param, out, false);
  for (rapidjson::SizeType i = 0; i < content.Size(); ++i) {
    const std::string p = indexed(param, i);
    const value& part = content[i];
    if (!part.IsObject()) return wrong_type(p, "an object");
    const std::string_view type = json::find_string(part, "type");
    if (type == "text") {
      const value* t = find(part, "text");
      if (t == nullptr || !t->IsString()) return wrong_type(p + ".text", "a string");
      if (t->GetStringLength() > 0) out.push_back(text_block(str(*t)));
    } else if (type == "image_url") {
      std::string b;
      if (!image(part, p, b)) return false;
      out.push_back(std::move(b));
    } else {
      return fail(refuse(p + ".type", "only text and image_url content parts can be translated"),
                  p + ".type");
    }
  }
  return true;
}

bool translator::tool_calls(const value& calls, const std::string& param,
                            std::vector<std::string>& out) {
  if (calls.IsNull()) return true;
  if (!calls.IsArray()) return wrong_type(param, "an array");
  for (rapidjson::SizeType i = 0; i < calls.Size(); ++i) {
    const std::string p = indexed(param, i);
    const value& c = calls[i];
    if (!c.IsObject()) return wrong_type(p, "an object");
    const value* id = find(c, "id");
    if (id == nullptr || !id->IsString() || id->GetStringLength() == 0) {
      return wrong_type(p + ".id", "a non-empty string");
    }
    const value* f = find(c, "function");
    if (f == nullptr || !f->IsObject()) return wrong_type(p + ".function", "an object");
    const value* name = find(*f, "name");
    if (name == nullptr || !name->IsString() || name->GetStringLength() == 0) {
      return wrong_type(p + ".function.name", "a non-empty string");
    }
    const value* args = find(*f, "arguments");
    if (args != nullptr && !args->IsNull() && !args->IsString()) {
      return wrong_type(p + ".function.arguments", "a string");
    }
    std::string b = R"({"type":"tool_use","id":)";
    json::append_string(b, str(*id));
    b += R"(,"name":)";
    json::append_string(b, str(*name));
    b += R"(,"input":)";
    std::string_view a = args != nullptr && args->IsString() ? str(*args) : std::string_view{};
    while (!a.empty() &&
           (a.front() == ' ' || a.front() == '\n' || a.front() == '\t' || a.front() == '\r')) {
      a.remove_prefix(1);
    }
    if (a.empty()) {
      b += "{}";
    } else {
      rapidjson::Document input;
      const json::parse_status st = json::parse(a, input);
      if (st != json::parse_status::ok || !input.IsObject()) {
        return fail("Invalid '" + p +
                        ".function.arguments': the arguments must be a JSON object in a string.",
                    p + ".function.arguments");
      }
      json::append_value(b, input);
    }
    b += '}';
    out.push_back(std::move(b));
  }
  return true;
}

bool translator::tool_result(const value& msg, const std::string& param, std::string& out) {
  const value* id = find(msg, "tool_call_id");
  if (id == nullptr || !id->IsString() || id->GetStringLength() == 0) {
    return wrong_type(param + ".tool_call_id", "a non-empty string");
  }
  out = R"({"type":"tool_result","tool_use_id":)";
  json::append_string(out, str(*id));
  const value* content = find(msg, "content");
  if (content != nullptr && content->IsString()) {
    if (content->GetStringLength() > 0) {
      out += R"(,"content":)";
      json::append_string(out, str(*content));
    }
  } else if (content != nullptr) {
    std::vector<std::string> parts;
    if (!texts(*content, param + ".content", parts, false)) return false;
    if (!parts.empty()) {
      out += R"(,"content":[)";
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i > 0) out += ',';
        out += parts[i];
      }
      out += ']';
    }
  }
  out += '}';
  return true;
}

bool translator::messages(const value& list) {
  bool leading = true;  // still in the leading run of system/developer messages
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const std::string param = indexed("messages", i);
    const value& m = list[i];
    if (!m.IsObject()) return wrong_type(param, "an object");
    const value* role_v = find(m, "role");
    if (role_v == nullptr || !role_v->IsString()) return wrong_type(param + ".role", "a string");
    const std::string_view role = str(*role_v);
    const value* content = find(m, "content");
    const std::string content_param = param + ".content";
    static const value null_value;
    const value& c = content != nullptr ? *content : null_value;
    if (role == "system" || role == "developer") {
      std::vector<std::string> blocks;
      if (!texts(c, content_param, blocks, false)) return false;
      if (leading) {
        for (auto& b : blocks) system_.push_back(std::move(b));
      } else if (!blocks.empty()) {
        add(true, std::move(blocks));
      }
      continue;
    }
    leading = false;
    if (role == "user") {
      std::vector<std::string> blocks;
      if (!user_parts(c, content_param, blocks)) return false;
      if (blocks.empty()) {
        return fail("Invalid '" + content_param + "': a user message must not be empty.",
                    content_param);
      }
      add(true, std::move(blocks));
    } else if (role == "assistant") {
      std::vector<std::string> blocks;
      if (!texts(c, content_param, blocks, true)) return false;
      if (const value* calls = find(m, "tool_calls"); calls != nullptr) {
        if (!tool_calls(*calls, param + ".tool_calls", blocks)) return false;
      }
      if (find(m, "function_call") != nullptr && !find(m, "function_call")->IsNull()) {
        return fail(refuse(param + ".function_call", "use 'tool_calls'"), param + ".function_call");
      }
      if (!blocks.empty()) add(false, std::move(blocks));
    } else if (role == "tool") {
      std::string b;
      if (!tool_result(m, param, b)) return false;
      std::vector<std::string> one;
      one.push_back(std::move(b));
      add(true, std::move(one), true);
    } else if (role == "function") {
      return fail(refuse(param + ".role",
                         "the legacy 'function' role is not translated; use "
                         "'tool' messages"),
                  param + ".role");
    } else {
      return fail("Invalid '" + param +
                      ".role': expected 'system', 'developer', 'user', 'assistant' or 'tool'.",
                  param + ".role");
    }
  }
  if (turns_.empty()) {
    return fail("Invalid 'messages': at least one user or assistant message is required.",
                "messages");
  }
  return true;
}

std::string translator::write(std::string_view model) const {
  const bool mark = options_.cache_control == cache_control::system_and_tools;
  std::string out = R"({"model":)";
  json::append_string(out, model);
  out += R"(,"max_tokens":)";
  json::append_int(out, max_tokens_);
  if (!system_.empty()) {
    out += R"(,"system":[)";
    for (std::size_t i = 0; i < system_.size(); ++i) {
      if (i > 0) out += ',';
      if (mark && i + 1 == system_.size()) {
        out.append(system_[i], 0, system_[i].size() - 1);
        out += ephemeral;
        out += '}';
      } else {
        out += system_[i];
      }
    }
    out += ']';
  }
  out += R"(,"messages":[)";
  for (std::size_t t = 0; t < turns_.size(); ++t) {
    if (t > 0) out += ',';
    out += turns_[t].user ? R"({"role":"user","content":[)" : R"({"role":"assistant","content":[)";
    bool first = true;
    for (const auto* list : {&turns_[t].results, &turns_[t].blocks}) {
      for (const auto& b : *list) {
        if (!first) out += ',';
        first = false;
        out += b;
      }
    }
    out += "]}";
  }
  out += ']';
  if (!tools_.empty()) {
    out += R"(,"tools":[)";
    for (std::size_t i = 0; i < tools_.size(); ++i) {
      if (i > 0) out += ',';
      if (mark && i + 1 == tools_.size()) {
        out.append(tools_[i], 0, tools_[i].size() - 1);
        out += ephemeral;
        out += '}';
      } else {
        out += tools_[i];
      }
    }
    out += ']';
    std::string choice = tool_choice_.empty() ? R"({"type":"auto")" : tool_choice_;
    const bool is_none = choice == R"({"type":"none")";
    if (!tool_choice_.empty() || no_parallel_) {
      out += R"(,"tool_choice":)";
      out += choice;
      if (no_parallel_ && !is_none) out += R"(,"disable_parallel_tool_use":true)";
      out += '}';
    }
  }
  if (!stop_.empty()) {
    out += R"(,"stop_sequences":[)";
    for (std::size_t i = 0; i < stop_.size(); ++i) {
      if (i > 0) out += ',';
      json::append_string(out, stop_[i]);
    }
    out += ']';
  }
  if (temperature_) {
    out += R"(,"temperature":)";
    json::append_double(out, *temperature_);
  }
  if (top_p_) {
    out += R"(,"top_p":)";
    json::append_double(out, *top_p_);
  }
  if (stream_) out += R"(,"stream":true)";
  if (!user_.empty()) {
    out += R"(,"metadata":{"user_id":)";
    json::append_string(out, user_);
    out += '}';
  }
  out += '}';
  return out;
}

bool translator::run(const value& doc, std::string_view model, messages_request& out) {
  if (!doc.IsObject()) return fail("The request body must be a JSON object.", {});
  if (!top_level(doc, out)) return false;
  if (!messages(*messages_)) return false;
  out.body = write(model);
  return true;
}

}  // namespace

std::variant<messages_request, api_error> to_messages_request(std::string_view chat_body,
                                                              std::string_view upstream_model,
                                                              const request_options& options) {
  openai::stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  switch (json::parse(chat_body, doc)) {
    case json::parse_status::ok:
      break;
    case json::parse_status::too_deep:
      return invalid_request("The JSON body nests deeper than " + std::to_string(json::max_depth) +
                             " levels.");
    case json::parse_status::not_json:
      return invalid_request("We could not parse the JSON body of your request.");
  }
  translator t(options);
  messages_request out;
  if (!t.run(doc, upstream_model, out)) return std::move(*t.error);
  return out;
}

}  // namespace tc::anthropic
