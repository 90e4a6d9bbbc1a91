// Parsing and validation of OpenAI client requests, and the byte-exact model rewrite.
//
// The body is parsed once with RapidJSON: iterative (a 100k-deep array must not overflow the
// stack), UTF-8 validated, in situ on a per-thread scratch copy so `request::body` stays
// byte-identical. Validation walks the top-level members once and looks only at the fields
// the gateway knows; unknown fields are left alone (they are forwarded in `body`).
//
// parse_request is a pure function of (endpoint, body): each thread keeps its last successful
// results (protocol/memo.hpp) and answers the same bytes again without parsing them.
#include "protocol/openai/request.hpp"

#include "protocol/memo.hpp"
#include "protocol/openai/json_document.hpp"
#include "protocol/openai/json_scan.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

namespace tc::openai {

namespace {

using json = rapidjson::Value;

// UTF-8 is checked before parsing by valid_utf8(), which is several times faster than
// kParseValidateEncodingFlag (byte-at-a-time tables) and also covers bytes outside strings.
constexpr unsigned parse_flags = rapidjson::kParseIterativeFlag;
/// Deepest nesting accepted anywhere in a request body (JSON schemas in tools stay far below).
constexpr unsigned max_json_depth = 128;
constexpr int64_t max_tokens_limit = 10'000'000;
constexpr std::size_t max_stop = 4;
constexpr uint32_t token_id_chars = 4;  ///< input_chars credited per token id in a prompt

std::string_view str(const json& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// A number for a message: "2", "0.5", "1e+06".
std::string fmt_number(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", d);
  return buf;
}

/// Strict UTF-8 check (no overlongs, surrogates or code points above U+10FFFF).
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // ASCII fast path, 8 bytes at a time: most bodies are ASCII with escapes.
    while (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, sizeof word);
      if ((word & 0x8080808080808080ULL) != 0) break;
      p += 8;
    }
    if (p == end) break;
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (std::size_t i = 2; i <= n; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += n + 1;
  }
  return true;
}

void add_chars(uint32_t& total, std::size_t n) {
  uint64_t sum = static_cast<uint64_t>(total) + n;
  total = sum > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                     : static_cast<uint32_t>(sum);
}

/// The top-level fields the gateway validates. Anything else is forwarded untouched.
enum class field : uint8_t {
  unknown,
  model,
  messages,
  prompt,
  input,
  stream,
  stream_options,
  max_tokens,
  max_completion_tokens,
  temperature,
  top_p,
  n,
  seed,
  tools,
  tool_choice,
  user,
  stop,
  presence_penalty,
  frequency_penalty,
  logit_bias,
  logprobs,
  top_logprobs,
  echo,
  best_of,
  suffix,
  dimensions,
  encoding_format,
};

/// Maps a top-level key to the field it is for this endpoint (unknown if it does not apply).
field lookup(endpoint kind, std::string_view k) {
  const bool chat = kind == endpoint::chat_completions;
  const bool completions = kind == endpoint::completions;
  const bool embeddings = kind == endpoint::embeddings;
  const bool generative = !embeddings;
  auto is = [&k](std::string_view name) { return k == name; };
  switch (k.size()) {
    case 1:
      if (generative && is("n")) return field::n;
      break;
    case 4:
      if (is("user")) return field::user;
      if (generative && is("seed")) return field::seed;
      if (generative && is("stop")) return field::stop;
      if (completions && is("echo")) return field::echo;
      break;
    case 5:
      if (is("model")) return field::model;
      if (embeddings && is("input")) return field::input;
      if (generative && is("top_p")) return field::top_p;
      if (chat && is("tools")) return field::tools;
      break;
    case 6:
      if (generative && is("stream")) return field::stream;
      if (completions && is("prompt")) return field::prompt;
      if (completions && is("suffix")) return field::suffix;
      break;
    case 7:
      if (completions && is("best_of")) return field::best_of;
      break;
    case 8:
      if (chat && is("messages")) return field::messages;
      if (generative && is("logprobs")) return field::logprobs;
      break;
    case 10:
      if (generative && is("max_tokens")) return field::max_tokens;
      if (generative && is("logit_bias")) return field::logit_bias;
      if (embeddings && is("dimensions")) return field::dimensions;
      break;
    case 11:
      if (generative && is("temperature")) return field::temperature;
      if (chat && is("tool_choice")) return field::tool_choice;
      break;
    case 12:
      if (chat && is("top_logprobs")) return field::top_logprobs;
      break;
    case 14:
      if (generative && is("stream_options")) return field::stream_options;
      break;
    case 15:
      if (embeddings && is("encoding_format")) return field::encoding_format;
      break;
    case 16:
      if (generative && is("presence_penalty")) return field::presence_penalty;
      break;
    case 17:
      if (generative && is("frequency_penalty")) return field::frequency_penalty;
      break;
    case 21:
      if (chat && is("max_completion_tokens")) return field::max_completion_tokens;
      break;
    default:
      break;
  }
  return field::unknown;
}

/// One validation pass over a parsed body. Each check returns false after recording the
/// first error; the caller stops there.
class validator {
 public:
  validator(endpoint kind, request& out) : kind_(kind), out_(out) {}

  std::optional<api_error> error;

  bool run(const json& root) {
    if (!root.IsObject()) return fail("request body must be a JSON object", {});
    uint64_t seen = 0;
    for (const auto& m : root.GetObject()) {
      const std::string_view key = str(m.name);
      const field f = lookup(kind_, key);
      if (f == field::unknown) continue;
      const uint64_t bit = uint64_t{1} << static_cast<unsigned>(f);
      if (seen & bit) {
        return fail("Duplicate parameter: '" + std::string(key) + "'.", std::string(key));
      }
      seen |= bit;
      if (!check(f, key, m.value)) return false;
    }
    return finish();
  }

 private:
  bool fail(std::string message, std::string param) {
    error = invalid_request(std::move(message), std::move(param));
    return false;
  }
  bool type_error(const std::string& param, const char* expected) {
    return fail("Invalid type for '" + param + "': expected " + expected + ".", param);
  }
  bool missing(const std::string& param) {
    return fail("Missing required parameter: '" + param + "'.", param);
  }
  bool empty_array(const std::string& param) {
    return fail("Invalid '" + param +
                    "': empty array. Expected an array with minimum length 1, but got an empty "
                    "array instead.",
                param);
  }
  bool empty_string(const std::string& param) {
    return fail("Invalid '" + param +
                    "': empty string. Expected a string with minimum length 1, but got an empty "
                    "string instead.",
                param);
  }

  /// RapidJSON 1.1 decodes a lone low-surrogate escape (\\udc00) into invalid UTF-8.
  bool bad_unicode(const std::string& param) {
    return fail("Invalid value for '" + param + "': the string is not valid Unicode.", param);
  }

  bool integer(std::string_view key, const json& v, int64_t lo, int64_t hi, int64_t& value) {
    const std::string param(key);
    if (!v.IsInt64()) return type_error(param, "an integer");
    value = v.GetInt64();
    if (value < lo) {
      return fail("Invalid '" + param + "': integer below minimum value. Expected a value >= " +
                      std::to_string(lo) + ", but got " + std::to_string(value) + " instead.",
                  param);
    }
    if (value > hi) {
      return fail("Invalid '" + param + "': integer above maximum value. Expected a value <= " +
                      std::to_string(hi) + ", but got " + std::to_string(value) + " instead.",
                  param);
    }
    return true;
  }
  bool number(std::string_view key, const json& v, double lo, double hi, double& value) {
    const std::string param(key);
    if (!v.IsNumber()) return type_error(param, "a number");
    value = v.GetDouble();
    if (value < lo) {
      return fail("Invalid '" + param + "': decimal below minimum value. Expected a value >= " +
                      fmt_number(lo) + ", but got " + fmt_number(value) + " instead.",
                  param);
    }
    if (value > hi) {
      return fail("Invalid '" + param + "': decimal above maximum value. Expected a value <= " +
                      fmt_number(hi) + ", but got " + fmt_number(value) + " instead.",
                  param);
    }
    return true;
  }

  bool check(field f, std::string_view key, const json& v) {
    // Every optional field accepts null as "not set", as OpenAI's schema marks them nullable.
    if (v.IsNull() && f != field::model && f != field::messages && f != field::prompt &&
        f != field::input) {
      return true;
    }
    int64_t i = 0;
    double d = 0;
    switch (f) {
      case field::unknown:
        return true;
      case field::model:
        if (v.IsNull()) return true;  // reported as missing by finish()
        if (!v.IsString()) return type_error("model", "a string");
        if (v.GetStringLength() == 0) return empty_string("model");
        if (!valid_utf8(str(v))) return bad_unicode("model");
        out_.model.assign(v.GetString(), v.GetStringLength());
        return true;
      case field::messages:
        has_body_ = !v.IsNull();
        return messages(v);
      case field::prompt:
        has_body_ = !v.IsNull();
        return prompt_or_input("prompt", v, false);
      case field::input:
        has_body_ = !v.IsNull();
        return prompt_or_input("input", v, true);
      case field::stream:
        if (!v.IsBool()) return type_error("stream", "a boolean");
        out_.stream = v.GetBool();
        return true;
      case field::stream_options:
        return stream_options(v);
      case field::max_tokens:
        if (!integer(key, v, 1, max_tokens_limit, i)) return false;
        if (out_.max_tokens == 0) out_.max_tokens = static_cast<uint32_t>(i);
        return true;
      case field::max_completion_tokens:
        if (!integer(key, v, 1, max_tokens_limit, i)) return false;
        out_.max_tokens = static_cast<uint32_t>(i);  // preferred over the legacy max_tokens
        return true;
      case field::temperature:
        if (!number(key, v, 0, 2, d)) return false;
        out_.temperature = d;
        return true;
      case field::top_p:
        return number(key, v, 0, 1, d);
      case field::presence_penalty:
      case field::frequency_penalty:
        return number(key, v, -2, 2, d);
      case field::n:
        if (!integer(key, v, 1, 128, i)) return false;
        out_.n = static_cast<uint32_t>(i);
        return true;
      case field::seed:
        if (!v.IsInt64()) return type_error("seed", "an integer");
        out_.seed = v.GetInt64();
        return true;
      case field::tools:
        return tools(v);
      case field::tool_choice:
        if (!v.IsString() && !v.IsObject()) {
          return type_error("tool_choice", "a string or an object");
        }
        return true;
      case field::user:
        if (!v.IsString()) return type_error("user", "a string");
        if (!valid_utf8(str(v))) return bad_unicode("user");
        out_.user.assign(v.GetString(), v.GetStringLength());
        return true;
      case field::stop:
        return stop(v);
      case field::logit_bias:
        if (!v.IsObject()) return type_error("logit_bias", "an object");
        return true;
      case field::logprobs:
        if (kind_ == endpoint::chat_completions) {
          if (!v.IsBool()) return type_error("logprobs", "a boolean");
          return true;
        }
        return integer(key, v, 0, 20, i);
      case field::top_logprobs:
        return integer(key, v, 0, 20, i);
      case field::echo:
        if (!v.IsBool()) return type_error("echo", "a boolean");
        return true;
      case field::best_of:
        return integer(key, v, 1, 128, i);
      case field::suffix:
        if (!v.IsString()) return type_error("suffix", "a string");
        return true;
      case field::dimensions:
        return integer(key, v, 1, 1'000'000, i);
      case field::encoding_format:
        if (!v.IsString()) return type_error("encoding_format", "a string");
        if (str(v) != "float" && str(v) != "base64") {
          return fail("Invalid value: '" + std::string(str(v)) +
                          "'. Supported values are: 'float' and 'base64'.",
                      "encoding_format");
        }
        return true;
    }
    return true;
  }

  bool stream_options(const json& v) {
    if (!v.IsObject()) return type_error("stream_options", "an object");
    has_stream_options_ = true;
    auto it = v.FindMember("include_usage");
    if (it != v.MemberEnd() && !it->value.IsNull()) {
      if (!it->value.IsBool()) return type_error("stream_options.include_usage", "a boolean");
      out_.include_usage = it->value.GetBool();
    }
    return true;
  }

  bool stop(const json& v) {
    if (v.IsString()) return true;
    if (!v.IsArray()) return type_error("stop", "a string, an array of strings, or null");
    if (v.Size() > max_stop) {
      return fail("Invalid 'stop': array too long. Expected an array with maximum length " +
                      std::to_string(max_stop) + ", but got an array with length " +
                      std::to_string(v.Size()) + " instead.",
                  "stop");
    }
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      if (!v[i].IsString()) return type_error("stop[" + std::to_string(i) + "]", "a string");
    }
    return true;
  }

  bool tools(const json& v) {
    if (!v.IsArray()) return type_error("tools", "an array");
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      const json& t = v[i];
      auto p = [i](std::string_view suffix) {
        return "tools[" + std::to_string(i) + "]" + std::string(suffix);
      };
      if (!t.IsObject()) return type_error(p(""), "an object");
      auto type = t.FindMember("type");
      if (type == t.MemberEnd()) return missing(p(".type"));
      if (!type->value.IsString()) return type_error(p(".type"), "a string");
      if (str(type->value) != "function") continue;
      auto fn = t.FindMember("function");
      if (fn == t.MemberEnd()) return missing(p(".function"));
      if (!fn->value.IsObject()) return type_error(p(".function"), "an object");
      auto name = fn->value.FindMember("name");
      if (name == fn->value.MemberEnd()) return missing(p(".function.name"));
      if (!name->value.IsString()) return type_error(p(".function.name"), "a string");
    }
    out_.has_tools = v.Size() > 0;
    return true;
  }

  bool messages(const json& v) {
    if (v.IsNull()) return true;  // reported as missing by finish()
    if (!v.IsArray()) return type_error("messages", "an array");
    if (v.Empty()) return empty_array("messages");
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      if (!message(i, v[i])) return false;
    }
    out_.message_count = v.Size();
    return true;
  }

  bool message(rapidjson::SizeType index, const json& m) {
    auto param = [index](std::string_view suffix) {
      std::string p = "messages[" + std::to_string(index) + "]";
      p.append(suffix);
      return p;
    };
    if (!m.IsObject()) return type_error(param(""), "an object");
    const json* role = nullptr;
    const json* content = nullptr;
    bool calls = false;  // non-null tool_calls or function_call
    for (const auto& f : m.GetObject()) {
      const std::string_view k = str(f.name);
      if (k == "role") {
        role = &f.value;
      } else if (k == "content") {
        content = &f.value;
      } else if (k == "tool_calls" || k == "function_call") {
        calls = calls || !f.value.IsNull();
      }
    }
    if (role == nullptr) return missing(param(".role"));
    if (!role->IsString()) return type_error(param(".role"), "a string");
    const std::string_view r = str(*role);
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer" &&
        r != "function") {
      return fail("Invalid value: '" + std::string(r) +
                      "'. Supported values are: 'system', 'assistant', 'user', 'function', "
                      "'tool', and 'developer'.",
                  param(".role"));
    }
    const bool may_be_null = r == "assistant" && calls;
    if (content == nullptr) {
      if (may_be_null) return true;
      return missing(param(".content"));
    }
    if (content->IsString()) {
      add_chars(out_.input_chars, content->GetStringLength());
      return true;
    }
    if (content->IsNull()) {
      if (may_be_null) return true;
      return fail("Invalid value for '" + param(".content") +
                      "': null is only allowed for assistant messages with tool_calls or "
                      "function_call.",
                  param(".content"));
    }
    if (!content->IsArray()) {
      return type_error(param(".content"), "a string, an array of parts, or null");
    }
    for (rapidjson::SizeType j = 0; j < content->Size(); ++j) {
      const json& part = (*content)[j];
      auto p = [&param, j](std::string_view suffix) {
        return param(".content[" + std::to_string(j) + "]" + std::string(suffix));
      };
      if (!part.IsObject()) return type_error(p(""), "an object");
      auto type = part.FindMember("type");
      if (type == part.MemberEnd()) return missing(p(".type"));
      if (!type->value.IsString()) return type_error(p(".type"), "a string");
      auto text = part.FindMember("text");
      const bool is_text = str(type->value) == "text";
      if (text == part.MemberEnd()) {
        if (is_text) return missing(p(".text"));
        continue;
      }
      if (text->value.IsString()) {
        add_chars(out_.input_chars, text->value.GetStringLength());
      } else if (is_text) {
        return type_error(p(".text"), "a string");
      }
    }
    return true;
  }

  /// `prompt` (completions) or `input` (embeddings): a string, an array of strings, an array
  /// of token ids, or an array of token-id arrays. Embeddings also refuse empty strings.
  bool prompt_or_input(const char* name, const json& v, bool non_empty_strings) {
    const std::string p = name;
    const char* expected =
        "a string, an array of strings, an array of integers, or an array of integer arrays";
    if (v.IsNull()) return true;  // reported as missing by finish()
    if (v.IsString()) {
      if (non_empty_strings && v.GetStringLength() == 0) return empty_string(p);
      add_chars(out_.input_chars, v.GetStringLength());
      out_.message_count = 1;
      return true;
    }
    if (!v.IsArray()) return type_error(p, expected);
    if (v.Empty()) return empty_array(p);
    const json& first = v[0];
    auto elem = [&p](rapidjson::SizeType i) { return p + "[" + std::to_string(i) + "]"; };
    if (first.IsString()) {
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        if (!v[i].IsString()) return type_error(elem(i), "a string");
        if (non_empty_strings && v[i].GetStringLength() == 0) return empty_string(elem(i));
        add_chars(out_.input_chars, v[i].GetStringLength());
      }
      out_.message_count = v.Size();
      return true;
    }
    if (first.IsNumber()) {
      if (!token_ids(p, v)) return false;
      out_.message_count = 1;
      return true;
    }
    if (first.IsArray()) {
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        if (!v[i].IsArray()) return type_error(elem(i), "an array of integers");
        if (v[i].Empty()) return empty_array(elem(i));
        if (!token_ids(elem(i), v[i])) return false;
      }
      out_.message_count = v.Size();
      return true;
    }
    return type_error(p, expected);
  }

  bool token_ids(const std::string& p, const json& arr) {
    for (rapidjson::SizeType i = 0; i < arr.Size(); ++i) {
      if (!arr[i].IsUint()) {
        return type_error(p + "[" + std::to_string(i) + "]", "a non-negative integer");
      }
    }
    add_chars(out_.input_chars, static_cast<std::size_t>(arr.Size()) * token_id_chars);
    return true;
  }

  bool finish() {
    if (out_.model.empty()) return missing("model");
    if (!has_body_) {
      switch (kind_) {
        case endpoint::chat_completions:
          return missing("messages");
        case endpoint::completions:
          return missing("prompt");
        case endpoint::embeddings:
          return missing("input");
      }
    }
    if (has_stream_options_ && !out_.stream) {
      return fail("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                  "stream_options");
    }
    return true;
  }

  endpoint kind_;
  request& out_;
  bool has_body_ = false;  ///< messages / prompt / input present and non-null
  bool has_stream_options_ = false;
};

/// Per-thread scratch for the in-situ parse: a copy of the body.
struct parse_scratch {
  static constexpr std::size_t keep_bytes = 1 << 20;  ///< larger buffers are not kept
  std::string text;
  rapidjson::Reader reader;  ///< kept: its stack is reused across requests
};

parse_scratch& scratch() {
  thread_local parse_scratch s;
  return s;
}

api_error not_json(rapidjson::ParseErrorCode code, std::size_t offset) {
  std::string msg =
      "We could not parse the JSON body of your request. (HINT: the body is not valid JSON: ";
  msg += rapidjson::GetParseError_En(code);
  msg += " (at byte " + std::to_string(offset) + ").)";
  return invalid_request(std::move(msg));
}

// --- with_model helpers: a scanner for the top-level object only ---

using json_scan::is_ws;
using json_scan::skip_string;
using json_scan::skip_value;
using json_scan::skip_ws;

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

using json_scan::hex4;

/// Decodes the inside of a JSON string literal (without quotes). False if malformed.
bool unescape(std::string_view raw, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i >= raw.size()) return false;
    switch (raw[i]) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (!hex4(raw, i + 1, cp)) return false;
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < raw.size() && raw[i + 1] == '\\' &&
            raw[i + 2] == 'u') {
          uint32_t lo;
          if (hex4(raw, i + 3, lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        append_utf8(out, cp);
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

/// Compares a JSON string literal's inside with plain text, decoding escapes only if present.
bool literal_equals(std::string_view raw, std::string_view text, std::string& tmp) {
  if (raw.find('\\') == std::string_view::npos) return raw == text;
  return unescape(raw, tmp) && tmp == text;
}

}  // namespace

std::string_view path_of(endpoint e) {
  switch (e) {
    case endpoint::chat_completions:
      return "/v1/chat/completions";
    case endpoint::completions:
      return "/v1/completions";
    case endpoint::embeddings:
      return "/v1/embeddings";
  }
  return "";
}

namespace {

/// parse_request's recent successes on this thread, by endpoint and body bytes, kept without
/// their body (the input holds it).
using parse_memo = recent_results<request, 1>;

parse_memo& local_parse_memo() {
  thread_local parse_memo m;
  return m;
}

std::variant<request, api_error> parse_new(endpoint kind, std::string body);

}  // namespace

std::variant<request, api_error> parse_request(endpoint kind, std::string body) {
  parse_memo& memo = local_parse_memo();
  const auto tag = static_cast<uint64_t>(kind);
  if (const request* known = memo.find(tag, {body})) {
    request out = *known;
    out.body = std::move(body);
    return out;
  }
  auto parsed = parse_new(kind, std::move(body));
  if (auto* r = std::get_if<request>(&parsed)) {
    std::string kept = std::move(r->body);
    r->body.clear();
    memo.keep(tag, {kept}, *r);
    r->body = std::move(kept);
  }
  return parsed;
}

namespace {

std::variant<request, api_error> parse_new(endpoint kind, std::string body) {
  if (!valid_utf8(body)) return invalid_request("request body is not valid UTF-8");
  // A raw NUL is never valid JSON, and RapidJSON's NUL-terminated streams would stop there.
  if (const void* nul = std::memchr(body.data(), '\0', body.size())) {
    return not_json(rapidjson::kParseErrorValueInvalid,
                    static_cast<std::size_t>(static_cast<const char*>(nul) - body.data()));
  }
  parse_scratch& s = scratch();
  s.text.assign(body);
  request out;
  {
    stack_document parsed;
    rapidjson::Document& doc = parsed.doc;
    depth_limited_handler handler{doc, max_json_depth};
    rapidjson::ParseResult result;
    auto generate = [&](rapidjson::Document&) {
      rapidjson::InsituStringStream in(s.text.data());
      result = s.reader.Parse<parse_flags | rapidjson::kParseInsituFlag>(in, handler);
      return !result.IsError();
    };
    doc.Populate(generate);
    if (result.IsError()) {
      if (s.text.capacity() > parse_scratch::keep_bytes) std::string().swap(s.text);
      if (handler.too_deep) {
        return invalid_request("The JSON body nests deeper than " + std::to_string(max_json_depth) +
                               " levels.");
      }
      return not_json(result.Code(), result.Offset());
    }
    out.kind = kind;
    validator v(kind, out);
    const bool ok = v.run(doc);
    if (s.text.capacity() > parse_scratch::keep_bytes) std::string().swap(s.text);
    if (!ok) return std::move(*v.error);
  }
  out.body = std::move(body);
  return out;
}

}  // namespace

std::string with_model(std::string_view body, std::string_view upstream_model) {
  struct span {
    std::size_t begin, end;  ///< the value including its quotes
  };
  span spans[4];
  std::size_t count = 0;
  std::string tmp;
  std::size_t i = 0;
  skip_ws(body, i);
  if (i >= body.size() || body[i] != '{') return std::string(body);
  ++i;
  skip_ws(body, i);
  if (i < body.size() && body[i] == '}') return std::string(body);
  for (;;) {
    skip_ws(body, i);
    if (i >= body.size() || body[i] != '"') return std::string(body);
    const std::size_t key_begin = i;
    if (!skip_string(body, i)) return std::string(body);
    const std::string_view key = body.substr(key_begin + 1, i - key_begin - 2);
    skip_ws(body, i);
    if (i >= body.size() || body[i] != ':') return std::string(body);
    ++i;
    skip_ws(body, i);
    const std::size_t value_begin = i;
    if (!skip_value(body, i)) return std::string(body);
    if (body[value_begin] == '"' && literal_equals(key, "model", tmp)) {
      const std::string_view value = body.substr(value_begin + 1, i - value_begin - 2);
      if (!literal_equals(value, upstream_model, tmp)) {
        if (count == std::size(spans)) return std::string(body);  // absurd: leave it
        spans[count++] = {value_begin, i};
      }
    }
    skip_ws(body, i);
    if (i >= body.size()) return std::string(body);
    if (body[i] == '}') break;
    if (body[i] != ',') return std::string(body);
    ++i;
  }
  if (count == 0) return std::string(body);

  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.String(upstream_model.data(), static_cast<rapidjson::SizeType>(upstream_model.size()));
  const std::string_view literal(sb.GetString(), sb.GetSize());

  std::string out;
  out.reserve(body.size() + count * literal.size());
  std::size_t from = 0;
  for (std::size_t k = 0; k < count; ++k) {
    out.append(body.substr(from, spans[k].begin - from));
    out.append(literal);
    from = spans[k].end;
  }
  out.append(body.substr(from));
  return out;
}

}  // namespace tc::openai
