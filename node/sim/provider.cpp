// The simulated GPU provider. See provider.hpp for the model.
//
// Scheduling: one uv timer serves every call. Calls wait FIFO for one of max_batch slots; a
// slot holder first spends its TTFT ("prefill", a min-heap of deadlines), then decodes. All
// decoding sequences share a clock W(t) = integral of 1 / (1 + c*(n-1)) dt over the current
// number n of slot holders, so sequence s has generated 1 + floor(tps_s * (W - W0_s)) tokens.
// A token's due time on that clock does not depend on n, so decoding sequences sit in a
// min-heap keyed by the W of their next token: a wake-up costs O(log n) per due token and
// nothing per idle sequence, and the timer is armed for the earliest due event (1 ms
// resolution). Joining or leaving only integrates W up to now: O(1).
//
// Back-pressure: pause() holds delivery only; generation goes on (only counters are kept, no
// bytes) and after resume() the backlog is sent at most 256 steps per on_data, one on_data
// per loop iteration. A generation that ends while paused frees its slot at once.
//
// Streams: one SSE event per token. Stream headers are sent with the first token (after the
// wait for a slot and the TTFT), so first_byte_ns is the time to first token. A call holds one
// slot per choice (n, times the prompts of a completions list; at most max_batch), as a server
// runs each as a sequence: its choices decode in parallel, one token each per step, and wait
// in line until that many slots are free.
//
// Token counts: completion_tokens = words generated (each word, with its leading space and
// any full stop, is one token) or, for a tool call, the argument fragments of about 4 bytes.
// prompt_tokens (chat) = sum over messages of 4 + tc::estimate_tokens of each text content
// (string content or {type:"text"} parts; tools and tool_calls are not counted);
// (completions, embeddings) = estimate_tokens of each string input, or the length of each
// token array. With prefix_cache_entries > 0 a chat call whose leading system/developer
// messages (their roles and texts) were among the last that many distinct ones reports their
// tokens as usage.prompt_tokens_details.cached_tokens (0 otherwise), as an automatic prefix
// cache would; timing is not changed by it.
//
// Moderation (POST .../moderations, the OpenAI shape): a text containing `sim-flag:<category>`
// (category = [a-z/_-]+, any number of markers) is flagged with those categories true, score
// 0.99; every other category is false, score 0.01. The answer's model is
// "tcsim-moderation (simulated, test double)". It needs no GPU: answered at once, though
// outages and error_rate apply as to any call.
//
// Messages (POST .../messages, Anthropic's shape): model and max_tokens required (else a 400
// {"type":"error","error":{"type":"invalid_request_error",...}}); one choice, text or, with
// tools (unless tool_choice none or a tool_result came last), one tool_use block. The seed
// leaves out the stream flag, so a stream and a non-stream call of a request say the same.
// input_tokens: the chat rule, the system counting as one message (4 + its text blocks).
// Anthropic caches only marked prefixes: with prefix_cache_entries > 0 the tools and the
// system blocks up to the last one carrying cache_control are the prefix; its tokens (the
// system's) are cache_creation_input_tokens the first time, cache_read_input_tokens after,
// and left out of input_tokens. Stream: message_start, ping, content_block_start, one
// content_block_delta per token (text_delta, or input_json_delta pieces of the arguments),
// content_block_stop, message_delta, message_stop, each an `event:` and a `data:` line.
// Faults: error_rate answers error_status with the Anthropic type of that status
// (429 rate_limit_error, 5xx api_error, 503/529 overloaded_error); an outage is 529.
//
// Everything that answers without the GPU model (instant mode, validation errors, injected
// faults, outages, /models, moderations) is queued and delivered by one shared uv_idle handle
// on the next loop iteration: callbacks never run inside start().
#include "node/sim/provider.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <iterator>
#include <list>
#include <queue>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include <rapidjson/document.h>

#include "node/sim/content.hpp"
#include "protocol/tokens.hpp"

namespace tc::sim {
namespace {

using upstream::call_id;
using header_vec = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view fingerprint = "tcsim-test-double";
constexpr uint64_t ms_ns = 1'000'000;
constexpr uint64_t horizon_ns = ms_ns;  // events due within this are served early
constexpr std::size_t max_models_listed = 256;
constexpr uint32_t max_steps_per_flush = 256;  // steps of one call per on_data

enum class endpoint : uint8_t {
  chat,
  completions,
  embeddings,
  models,
  moderations,
  messages,  ///< Anthropic Messages API
  unknown
};
enum class phase : uint8_t { canned, waiting, prefill, decoding, generated };

/// One choice of a generated answer.
struct choice_plan {
  uint64_t seed = 0;
  uint32_t length = 0;  ///< tokens: words of text, or fragments of tool-call arguments
  bool capped = false;  ///< stopped by max_tokens: finish_reason "length"
  int32_t tool = -1;    ///< index into call::tools, or -1 for text
};

struct tool_answer {
  std::string name;
  std::string arguments;
  std::vector<uint32_t> ends;  ///< fragment end offsets into arguments
  uint64_t id = 0;
};

struct call {
  call_id id = 0;
  upstream::call_handlers h;
  endpoint ep = endpoint::unknown;
  phase ph = phase::waiting;  // set_canned() makes it canned
  bool stream = false;
  bool include_usage = false;
  bool paused = false;
  bool headers_sent = false;
  bool dead = false;         ///< cancelled while one of its callbacks ran
  bool fault = false;        ///< injected error or outage answer
  bool precomputed = false;  ///< body holds the whole answer (embeddings)
  int status = 200;
  header_vec headers;  ///< canned answers
  std::string body;    ///< canned or precomputed answer
  std::string model;
  std::string head;  ///< SSE chunk prefix up to and including "choices":[
  uint64_t seed = 0;
  uint64_t created = 0;
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;         ///< of prompt_tokens, from the simulated prefix cache
  uint32_t cache_created_tokens = 0;  ///< of prompt_tokens, written to the cache (/messages)
  bool report_cached = false;         ///< the prefix cache is on: usage has prompt_tokens_details
  std::vector<choice_plan> choices;
  std::vector<tool_answer> tools;
  uint32_t total_steps = 0;  ///< longest choice; choices decode in parallel
  uint32_t slots = 1;        ///< batch slots it holds while it runs (one per choice)
  uint32_t generated = 0;    ///< steps generated
  uint32_t emitted = 0;      ///< steps delivered
  uint64_t ttft_ns = 0;      ///< own schedule, fixed at start()
  double tokens_per_sec = 0;
  double w0 = 0;  ///< decode clock at the first token
  uint64_t first_byte_ns = 0;
  uint64_t bytes = 0;
};

struct prefill_entry {
  uint64_t due_ns;
  call_id id;
  bool operator>(const prefill_entry& o) const { return due_ns > o.due_ns; }
};

struct decode_entry {
  double w;
  call_id id;
  bool operator>(const decode_entry& o) const { return w > o.w; }
};

template <class T>
using min_heap = std::priority_queue<T, std::vector<T>, std::greater<T>>;

uint32_t estimate(std::string_view text) {
  return tc::estimate_tokens(text);
}

std::string_view sv(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

const rapidjson::Value* member(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

/// A request problem answered with 400.
struct bad_request {
  std::string message;
  std::string param;
};

std::string error_envelope(std::string_view message, std::string_view type, std::string_view param,
                           std::string_view code) {
  std::string out = "{\"error\":{\"message\":";
  append_json_string(out, message);
  out += ",\"type\":";
  append_json_string(out, type);
  out += ",\"param\":";
  if (param.empty()) {
    out += "null";
  } else {
    append_json_string(out, param);
  }
  out += ",\"code\":";
  if (code.empty()) {
    out += "null";
  } else {
    append_json_string(out, code);
  }
  out += "}}";
  return out;
}

/// The Anthropic error type of an HTTP status (the one Anthropic's API documents for it).
std::string_view anthropic_error_type(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    case 504:
      return "timeout_error";
    default:
      return status < 500 ? "invalid_request_error" : "api_error";
  }
}

/// {"type":"error","error":{"type":...,"message":...}}, Anthropic's error answer.
std::string anthropic_error_body(std::string_view type, std::string_view message) {
  std::string out = "{\"type\":\"error\",\"error\":{\"type\":";
  append_json_string(out, type);
  out += ",\"message\":";
  append_json_string(out, message);
  out += "}}";
  return out;
}

std::string_view url_path(std::string_view url) {
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) {
    auto slash = url.find('/', scheme + 3);
    url = slash == std::string_view::npos ? std::string_view("/") : url.substr(slash);
  }
  if (auto q = url.find_first_of("?#"); q != std::string_view::npos) url = url.substr(0, q);
  while (url.size() > 1 && url.back() == '/') url.remove_suffix(1);
  return url;
}

endpoint endpoint_of(std::string_view path) {
  if (path.ends_with("/chat/completions")) return endpoint::chat;
  if (path.ends_with("/completions")) return endpoint::completions;
  if (path.ends_with("/embeddings")) return endpoint::embeddings;
  if (path.ends_with("/models")) return endpoint::models;
  if (path.ends_with("/moderations")) return endpoint::moderations;
  if (path.ends_with("/messages")) return endpoint::messages;
  return endpoint::unknown;
}

/// Optional positive integer field; false with `err` set if present and not one.
bool read_count(const rapidjson::Value& doc, const char* name, uint32_t max, uint32_t& out,
                bool& present, bad_request& err) {
  present = false;
  const rapidjson::Value* v = member(doc, name);
  if (!v) return true;
  if (!v->IsUint64() || v->GetUint64() < 1 || v->GetUint64() > max) {
    err = {std::string("'") + name + "' must be an integer between 1 and " + std::to_string(max),
           name};
    return false;
  }
  out = static_cast<uint32_t>(v->GetUint64());
  present = true;
  return true;
}

/// Text prompts of /completions and inputs of /embeddings: string | [string] | [int] |
/// [[int]]. Token arrays count one token per element; they are hashed as their decimal text.
bool read_inputs(const rapidjson::Value* v, const char* name, std::vector<std::string>& texts,
                 std::vector<uint32_t>& tokens, bad_request& err) {
  auto fail = [&] {
    err = {std::string("'") + name +
               "' must be a string, an array of strings, an array of integers or an array of "
               "integer arrays",
           name};
    return false;
  };
  auto ints_text = [](const rapidjson::Value& arr, std::string& out) {
    for (const auto& x : arr.GetArray()) {
      if (!x.IsUint64()) return false;
      append_uint(out, x.GetUint64());
      out.push_back(' ');
    }
    return true;
  };
  if (!v) {
    err = {std::string("missing required parameter '") + name + "'", name};
    return false;
  }
  if (v->IsString()) {
    texts.emplace_back(sv(*v));
    tokens.push_back(estimate(texts.back()));
    return true;
  }
  if (!v->IsArray() || v->Empty()) return fail();
  const auto& first = (*v)[0];
  if (first.IsUint64()) {  // one token array
    std::string t;
    if (!ints_text(*v, t)) return fail();
    texts.push_back(std::move(t));
    tokens.push_back(v->Size());
    return true;
  }
  for (const auto& x : v->GetArray()) {
    if (x.IsString()) {
      texts.emplace_back(sv(x));
      tokens.push_back(estimate(texts.back()));
    } else if (x.IsArray()) {
      std::string t;
      if (!ints_text(x, t)) return fail();
      texts.push_back(std::move(t));
      tokens.push_back(x.Size());
    } else {
      return fail();
    }
  }
  return true;
}

constexpr std::string_view moderation_model = "tcsim-moderation (simulated, test double)";
constexpr std::string_view moderation_marker = "sim-flag:";

/// OpenAI's moderation categories, in the order its answers list them.
constexpr std::string_view moderation_categories[] = {"harassment",
                                                      "harassment/threatening",
                                                      "hate",
                                                      "hate/threatening",
                                                      "illicit",
                                                      "illicit/violent",
                                                      "self-harm",
                                                      "self-harm/intent",
                                                      "self-harm/instructions",
                                                      "sexual",
                                                      "sexual/minors",
                                                      "violence",
                                                      "violence/graphic"};

bool marker_char(char c) {
  return (c >= 'a' && c <= 'z') || c == '/' || c == '_' || c == '-';
}

/// The categories named by `sim-flag:<category>` markers in `text`, each once, in order of
/// first appearance.
std::vector<std::string_view> flagged_categories(std::string_view text) {
  std::vector<std::string_view> out;
  for (std::size_t pos = text.find(moderation_marker); pos != std::string_view::npos;
       pos = text.find(moderation_marker, pos)) {
    pos += moderation_marker.size();
    std::size_t end = pos;
    while (end < text.size() && marker_char(text[end])) ++end;
    std::string_view cat = text.substr(pos, end - pos);
    if (!cat.empty() && std::find(out.begin(), out.end(), cat) == out.end()) out.push_back(cat);
    pos = end;
  }
  return out;
}

/// One /moderations result: every standard category, then the flagged ones that are not.
void append_moderation_result(std::string& out, std::string_view text) {
  const std::vector<std::string_view> flagged = flagged_categories(text);
  std::vector<std::string_view> names(std::begin(moderation_categories),
                                      std::end(moderation_categories));
  for (std::string_view f : flagged) {
    if (std::find(names.begin(), names.end(), f) == names.end()) names.push_back(f);
  }
  auto is_flagged = [&](std::string_view n) {
    return std::find(flagged.begin(), flagged.end(), n) != flagged.end();
  };
  out += flagged.empty() ? "{\"flagged\":false,\"categories\":{"
                         : "{\"flagged\":true,\"categories\":{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, names[i]);
    out += is_flagged(names[i]) ? ":true" : ":false";
  }
  out += "},\"category_scores\":{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, names[i]);
    out += is_flagged(names[i]) ? ":0.99" : ":0.01";
  }
  out += "}}";
}

const char* finish_reason(const call& c, const choice_plan& ch) {
  if (ch.tool >= 0) return "tool_calls";
  return ch.capped ? "length" : "stop";
}

uint32_t completion_tokens(const call& c, uint32_t steps) {
  uint32_t sum = 0;
  for (const auto& ch : c.choices) sum += std::min(steps, ch.length);
  return sum;
}

void append_usage(std::string& out, const call& c) {
  uint32_t done = completion_tokens(c, c.total_steps);
  out += "\"usage\":{\"prompt_tokens\":";
  append_uint(out, c.prompt_tokens);
  out += ",\"completion_tokens\":";
  append_uint(out, done);
  out += ",\"total_tokens\":";
  append_uint(out, uint64_t{c.prompt_tokens} + done);
  if (c.report_cached) {
    out += ",\"prompt_tokens_details\":{\"cached_tokens\":";
    append_uint(out, c.cached_tokens);
    out += '}';
  }
  out += '}';
}

void append_text(std::string& out, const choice_plan& ch) {
  for (uint32_t k = 0; k < ch.length; ++k) append_token(out, ch.seed, k, ch.length, !ch.capped);
}

/// The non-stream JSON answer of a chat or completions call.
std::string build_body(const call& c) {
  std::string out;
  out.reserve(256 + c.choices.size() * (c.choices.empty() ? 0 : c.choices[0].length * 8 + 160));
  const bool chat = c.ep == endpoint::chat;
  out += chat ? "{\"id\":\"chatcmpl-sim-" : "{\"id\":\"cmpl-sim-";
  append_hex64(out, mix64(c.seed ^ mix64(c.id)));
  out += chat ? "\",\"object\":\"chat.completion\",\"created\":"
              : "\",\"object\":\"text_completion\",\"created\":";
  append_uint(out, c.created);
  out += ",\"model\":";
  append_json_string(out, c.model);
  out += ",\"choices\":[";
  for (std::size_t i = 0; i < c.choices.size(); ++i) {
    const choice_plan& ch = c.choices[i];
    if (i) out += ',';
    if (chat) {
      out += "{\"index\":";
      append_uint(out, i);
      out += ",\"message\":{\"role\":\"assistant\",\"content\":";
      if (ch.tool >= 0) {
        const tool_answer& t = c.tools[ch.tool];
        out += "null,\"tool_calls\":[{\"id\":\"call_sim_";
        append_hex64(out, t.id);
        out += "\",\"type\":\"function\",\"function\":{\"name\":";
        append_json_string(out, t.name);
        out += ",\"arguments\":";
        append_json_string(out, t.arguments);
        out += "}}]";
      } else {
        out += '"';
        append_text(out, ch);
        out += '"';
      }
      out += ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"";
      out += finish_reason(c, ch);
      out += "\"}";
    } else {
      out += "{\"text\":\"";
      append_text(out, ch);
      out += "\",\"index\":";
      append_uint(out, i);
      out += ",\"logprobs\":null,\"finish_reason\":\"";
      out += finish_reason(c, ch);
      out += "\"}";
    }
  }
  out += "],";
  append_usage(out, c);
  out += ",\"system_fingerprint\":\"";
  out += fingerprint;
  out += "\"}";
  return out;
}

/// A hash of a JSON value's structure and contents (iterative: any depth). Object members are
/// taken in their order.
uint64_t hash_json(const rapidjson::Value& root, uint64_t h) {
  std::vector<const rapidjson::Value*> stack{&root};
  while (!stack.empty()) {
    const rapidjson::Value& v = *stack.back();
    stack.pop_back();
    h = mix64(h ^ (static_cast<uint64_t>(v.GetType()) + 1));
    if (v.IsString()) {
      h = fnv1a64(sv(v), h);
    } else if (v.IsUint64()) {
      h = mix64(h ^ v.GetUint64());
    } else if (v.IsInt64()) {
      h = mix64(h ^ static_cast<uint64_t>(v.GetInt64()));
    } else if (v.IsNumber()) {
      double d = v.GetDouble();
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      h = mix64(h ^ bits);
    } else if (v.IsArray()) {
      h = mix64(h ^ v.Size());
      for (auto it = v.End(); it != v.Begin();) stack.push_back(&*--it);
    } else if (v.IsObject()) {
      h = mix64(h ^ v.MemberCount());
      for (auto it = v.MemberEnd(); it != v.MemberBegin();) {
        --it;
        h = fnv1a64(sv(it->name), h);
        stack.push_back(&it->value);
      }
    }
  }
  return h;
}

/// Anthropic's stop_reason for a choice.
const char* stop_reason(const choice_plan& ch) {
  if (ch.tool >= 0) return "tool_use";
  return ch.capped ? "max_tokens" : "end_turn";
}

/// The id of a /messages answer: the "msg_tcsim_" prefix marks the test double.
void append_message_id(std::string& out, const call& c) {
  out += "\"msg_tcsim_";
  append_hex64(out, mix64(c.seed ^ mix64(c.id)));
  out += '"';
}

/// Anthropic's usage object: input_tokens excludes the prefix-cache tokens, reported apart.
void append_message_usage(std::string& out, const call& c, uint32_t output_tokens) {
  out += "{\"input_tokens\":";
  append_uint(out, c.prompt_tokens - c.cached_tokens - c.cache_created_tokens);
  out += ",\"cache_creation_input_tokens\":";
  append_uint(out, c.cache_created_tokens);
  out += ",\"cache_read_input_tokens\":";
  append_uint(out, c.cached_tokens);
  out += ",\"output_tokens\":";
  append_uint(out, output_tokens);
  out += '}';
}

/// The opening of a /messages answer, up to and including "content":[.
void append_message_open(std::string& out, const call& c) {
  out += "{\"id\":";
  append_message_id(out, c);
  out += ",\"type\":\"message\",\"role\":\"assistant\",\"model\":";
  append_json_string(out, c.model);
  out += ",\"content\":[";
}

/// The non-stream JSON answer of a /messages call (Anthropic's message object).
std::string build_message_body(const call& c) {
  std::string out;
  out.reserve(384 + (c.choices.empty() ? 0 : c.choices[0].length * 8));
  append_message_open(out, c);
  const char* reason = "end_turn";
  if (!c.choices.empty()) {
    const choice_plan& ch = c.choices[0];
    reason = stop_reason(ch);
    if (ch.tool >= 0) {
      const tool_answer& t = c.tools[ch.tool];
      out += "{\"type\":\"tool_use\",\"id\":\"toolu_tcsim_";
      append_hex64(out, t.id);
      out += "\",\"name\":";
      append_json_string(out, t.name);
      out += ",\"input\":";
      out += t.arguments;  // a JSON object text (tool_arguments)
      out += '}';
    } else {
      out += "{\"type\":\"text\",\"text\":\"";
      append_text(out, ch);
      out += "\"}";
    }
  }
  out += "],\"stop_reason\":\"";
  out += reason;
  out += "\",\"stop_sequence\":null,\"usage\":";
  append_message_usage(out, c, completion_tokens(c, c.total_steps));
  out += '}';
  return out;
}

/// Opens one SSE event of a /messages stream: its event line and the start of its data line.
void open_event(std::string& out, std::string_view name) {
  out += "event: ";
  out += name;
  out += "\ndata: {\"type\":\"";
  out += name;
  out += '"';
}

/// message_start (empty content, the input usage), one ping, then content_block_start.
void append_stream_start(std::string& out, const call& c) {
  open_event(out, "message_start");
  out += ",\"message\":";
  append_message_open(out, c);
  out += "],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":";
  append_message_usage(out, c, 0);
  out += "}}\n\n";
  open_event(out, "ping");
  out += "}\n\n";
  open_event(out, "content_block_start");
  out += ",\"index\":0,\"content_block\":";
  const choice_plan& ch = c.choices[0];
  if (ch.tool >= 0) {
    const tool_answer& t = c.tools[ch.tool];
    out += "{\"type\":\"tool_use\",\"id\":\"toolu_tcsim_";
    append_hex64(out, t.id);
    out += "\",\"name\":";
    append_json_string(out, t.name);
    out += ",\"input\":{}}";
  } else {
    out += "{\"type\":\"text\",\"text\":\"\"}";
  }
  out += "}\n\n";
}

/// content_block_delta of token k: a text_delta, or an input_json_delta piece of the arguments.
void append_stream_delta(std::string& out, const call& c, uint32_t k) {
  const choice_plan& ch = c.choices[0];
  open_event(out, "content_block_delta");
  out += ",\"index\":0,\"delta\":";
  if (ch.tool >= 0) {
    const tool_answer& t = c.tools[ch.tool];
    uint32_t from = k == 0 ? 0 : t.ends[k - 1];
    out += "{\"type\":\"input_json_delta\",\"partial_json\":";
    append_json_string(out, std::string_view(t.arguments).substr(from, t.ends[k] - from));
    out += '}';
  } else {
    out += "{\"type\":\"text_delta\",\"text\":\"";
    append_token(out, ch.seed, k, ch.length, !ch.capped);
    out += "\"}";
  }
  out += "}\n\n";
}

/// content_block_stop, message_delta (stop_reason, output_tokens) and message_stop.
void append_stream_end(std::string& out, const call& c) {
  open_event(out, "content_block_stop");
  out += ",\"index\":0}\n\n";
  open_event(out, "message_delta");
  out += ",\"delta\":{\"stop_reason\":\"";
  out += stop_reason(c.choices[0]);
  out += "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":";
  append_uint(out, completion_tokens(c, c.total_steps));
  out += "}}\n\n";
  open_event(out, "message_stop");
  out += "}\n\n";
}

}  // namespace

struct provider::impl {
  uv_loop_t* loop;
  config::sim_settings settings;
  std::unordered_map<call_id, std::unique_ptr<call>> calls;
  call_id next_id = 1;
  uint64_t fault_counter = 0;
  sim_stats counters;  // requests, completed, errors, cancelled, tokens_generated
  uint32_t active = 0;
  uint32_t waiting = 0;
  std::deque<call_id> wait_queue;  // may hold ids of cancelled calls: skipped
  std::list<uint64_t> prefix_lru;  // the prefix cache, most recent first
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> prefix_index;
  min_heap<prefill_entry> prefill;
  min_heap<decode_entry> decode;
  uv_timer_t* timer = nullptr;
  uv_idle_t* idle = nullptr;
  uint64_t timer_due_ns = 0;  // 0: not armed
  std::vector<call_id> ready;
  std::vector<call_id> ready_spare;
  bool dispatching = false;
  std::vector<std::unique_ptr<call>> graveyard;  // cancelled during a dispatch
  bool closed = false;
  // Clocks: W (decode clock) and utilisation, integrated up to last_ns.
  uint64_t start_ns = 0;
  uint64_t start_ms = 0;
  uint64_t last_ns = 0;
  double w = 0;
  double util_integral = 0;  // seconds at full utilisation
  struct bucket {
    int64_t sec = -1;
    double integral = 0;
  };
  bucket buckets[10];
  std::vector<std::string> models{"sim-default"};
  std::unordered_set<std::string> model_set{"sim-default"};

  impl(uv_loop_t* l, config::sim_settings s) : loop(l), settings(std::move(s)) {
    start_ns = last_ns = uv_hrtime();
    start_ms = uv_now(loop);
    timer = new uv_timer_t;
    uv_timer_init(loop, timer);
    timer->data = this;
    idle = new uv_idle_t;
    uv_idle_init(loop, idle);
    idle->data = this;
  }

  uint32_t max_batch() const { return std::max<uint32_t>(1, settings.max_batch); }

  double contention() const { return std::max(0.0, settings.batch_contention); }

  /// Per-sequence rate factor with n slot holders.
  double factor(uint32_t n) const { return n == 0 ? 1.0 : 1.0 / (1.0 + contention() * (n - 1)); }

  double throughput(uint32_t n) const { return n * factor(n); }

  double util_level(uint32_t n) const {
    if (n == 0) return 0;
    return std::min(1.0, throughput(n) / throughput(max_batch()));
  }

  /// Integrates W and utilisation up to now with the current number of slot holders.
  void advance(uint64_t now) {
    if (now <= last_ns) return;
    if (active > 0) {
      double dt = static_cast<double>(now - last_ns) * 1e-9;
      w += factor(active) * dt;
      double u = util_level(active);
      util_integral += u * dt;
      double a = static_cast<double>(last_ns - start_ns) * 1e-9;
      double b = static_cast<double>(now - start_ns) * 1e-9;
      auto last_sec = static_cast<int64_t>(b);
      a = std::max(a, static_cast<double>(last_sec - 9));
      for (auto s = static_cast<int64_t>(a); s <= last_sec && a < b; ++s) {
        double part = std::min(b, static_cast<double>(s + 1)) - std::max(a, static_cast<double>(s));
        if (part <= 0) continue;
        bucket& bk = buckets[s % 10];
        if (bk.sec != s) bk = {s, 0};
        bk.integral += u * part;
      }
    }
    last_ns = now;
  }

  void utilisation(uint64_t now, double& all, double& recent) const {
    double pending_u = util_level(active);
    double t_now = static_cast<double>(now - start_ns) * 1e-9;
    double t_last = static_cast<double>(last_ns - start_ns) * 1e-9;
    double pending = now > last_ns ? pending_u * (t_now - t_last) : 0;
    all = t_now > 0 ? std::clamp((util_integral + pending) / t_now, 0.0, 1.0) : 0;
    auto cur = static_cast<int64_t>(t_now);
    double window_start = std::max(0.0, static_cast<double>(cur - 9));
    double sum = 0;
    for (const bucket& bk : buckets) {
      if (bk.sec >= cur - 9 && bk.sec <= cur) sum += bk.integral;
    }
    if (now > last_ns) sum += pending_u * (t_now - std::max(t_last, window_start));
    double span = t_now - window_start;
    recent = span > 0 ? std::clamp(sum / span, 0.0, 1.0) : 0;
  }

  call* find(call_id id) {
    auto it = calls.find(id);
    return it == calls.end() ? nullptr : it->second.get();
  }

  bool in_outage() const {
    double t = static_cast<double>(uv_now(loop) - start_ms) / 1000.0;
    for (const auto& o : settings.outages) {
      if (t >= o.start_s && t < o.end_s) return true;
    }
    return false;
  }

  void push_ready(call_id id) {
    if (closed) return;
    if (ready.empty() && !uv_is_active(reinterpret_cast<uv_handle_t*>(idle)))
      uv_idle_start(idle, [](uv_idle_t* h) { static_cast<impl*>(h->data)->on_idle(); });
    ready.push_back(id);
  }

  void set_canned(call& c, int status, std::string body, bool fault, uint32_t retry_after_s) {
    c.ph = phase::canned;
    c.status = status;
    c.fault = fault;
    c.headers.clear();
    c.headers.emplace_back("content-type", "application/json");
    if (retry_after_s > 0) c.headers.emplace_back("retry-after", std::to_string(retry_after_s));
    c.body = std::move(body);
  }

  /// An error answer in the shape of the call's API: /messages gets Anthropic's (its type from
  /// `status`; `type`, `param` and `code` are OpenAI's), every other endpoint OpenAI's.
  void set_error(call& c, int status, std::string_view message, std::string_view type,
                 std::string_view param, std::string_view code) {
    if (c.ep == endpoint::messages) {
      set_canned(c, status, anthropic_error_body(anthropic_error_type(status), message), false, 0);
      return;
    }
    set_canned(c, status, error_envelope(message, type, param, code), false, 0);
  }

  void set_fault(call& c, int status, std::string_view message) {
    if (status < 400 || status > 599) status = 503;
    if (c.ep == endpoint::messages) {
      bool retry = status == 429 || status == 503 || status == 529;
      set_canned(c, status, anthropic_error_body(anthropic_error_type(status), message), true,
                 retry ? 1 : 0);
      return;
    }
    std::string_view type = "server_error";
    std::string_view code;
    if (status == 429) {
      type = code = "rate_limit_exceeded";
    } else if (status == 503) {
      code = "service_unavailable";
    } else if (status < 500) {
      type = "invalid_request_error";
    }
    bool retry = status == 429 || status == 503;
    set_canned(c, status, error_envelope(message, type, {}, code), true, retry ? 1 : 0);
  }

  void note_model(const std::string& name) {
    if (model_set.size() >= max_models_listed || model_set.count(name)) return;
    model_set.insert(name);
    models.push_back(name);
  }

  std::string models_body() const {
    std::string out = "{\"object\":\"list\",\"data\":[";
    const uint64_t created = 1700000000;  // fixed: the list is request-independent
    for (std::size_t i = 0; i < models.size(); ++i) {
      if (i) out += ',';
      out += "{\"id\":";
      append_json_string(out, models[i]);
      out += ",\"object\":\"model\",\"created\":";
      append_uint(out, created);
      out += ",\"owned_by\":\"tcsim\"}";
    }
    out += "]}";
    return out;
  }

  // ---- request planning ----------------------------------------------------------------

  bool plan_common(const rapidjson::Document& doc, call& c, bad_request& err) {
    const rapidjson::Value* model = member(doc, "model");
    if (!model) {
      err = {"you must provide a model parameter", "model"};
      return false;
    }
    if (!model->IsString()) {
      err = {"'model' must be a string", "model"};
      return false;
    }
    c.model.assign(model->GetString(), model->GetStringLength());
    if (const rapidjson::Value* s = member(doc, "stream")) {
      if (!s->IsBool()) {
        err = {"'stream' must be a boolean", "stream"};
        return false;
      }
      c.stream = s->GetBool();
    }
    if (const rapidjson::Value* so = member(doc, "stream_options"); so && c.stream) {
      if (!so->IsObject()) {
        err = {"'stream_options' must be an object", "stream_options"};
        return false;
      }
      if (const rapidjson::Value* iu = member(*so, "include_usage")) {
        if (!iu->IsBool()) {
          err = {"'stream_options.include_usage' must be a boolean", "stream_options"};
          return false;
        }
        c.include_usage = iu->GetBool();
      }
    }
    return true;
  }

  /// max_completion_tokens, else max_tokens; 0 when neither is set.
  bool read_cap(const rapidjson::Document& doc, uint32_t& cap, bad_request& err) {
    bool present = false;
    cap = 0;
    if (!read_count(doc, "max_completion_tokens", 1u << 30, cap, present, err)) return false;
    if (present) return true;
    return read_count(doc, "max_tokens", 1u << 30, cap, present, err);
  }

  void add_text_choice(call& c, uint64_t seed, uint32_t cap) {
    choice_plan ch;
    ch.seed = seed;
    ch.length = text_length(seed, settings.default_max_tokens);
    if (cap > 0 && cap < ch.length) {
      ch.length = cap;
      ch.capped = true;
    }
    c.choices.push_back(ch);
  }

  /// A choice that calls tool `name` with arguments generated from the JSON schema `parameters`.
  void add_tool_choice(call& c, std::string_view name, const rapidjson::Value* parameters,
                       uint64_t seed) {
    tool_answer t;
    t.name = std::string(name);
    t.arguments = tool_arguments(parameters, seed);
    t.ends = fragment_ends(t.arguments);
    t.id = mix64(seed ^ mix64(c.id));
    choice_plan ch;
    ch.seed = seed;
    ch.length = static_cast<uint32_t>(t.ends.size());
    ch.tool = static_cast<int32_t>(c.tools.size());
    c.tools.push_back(std::move(t));
    c.choices.push_back(ch);
  }

  /// The simulated automatic prefix cache: whether a call with these leading system messages
  /// came before (among the last prefix_cache_entries distinct ones); remembers this one.
  bool prefix_seen(uint64_t id) {
    auto it = prefix_index.find(id);
    if (it != prefix_index.end()) {
      prefix_lru.splice(prefix_lru.begin(), prefix_lru, it->second);
      return true;
    }
    prefix_lru.push_front(id);
    prefix_index.emplace(id, prefix_lru.begin());
    while (prefix_lru.size() > settings.prefix_cache_entries) {
      prefix_index.erase(prefix_lru.back());
      prefix_lru.pop_back();
    }
    return false;
  }

  bool plan_chat(const rapidjson::Document& doc, call& c, bad_request& err) {
    if (!plan_common(doc, c, err)) return false;
    const rapidjson::Value* msgs = member(doc, "messages");
    if (!msgs) {
      err = {"you must provide a messages parameter", "messages"};
      return false;
    }
    if (!msgs->IsArray() || msgs->Empty()) {
      err = {"'messages' must be a non-empty array", "messages"};
      return false;
    }
    // prompt_tokens = sum over messages of (4 + estimate of each text content).
    uint32_t prompt = 0;
    std::string_view last_role;
    bool leading = true;     // still in the leading system/developer messages
    uint32_t prefix = 0;     // their tokens
    uint64_t prefix_id = 0;  // and a hash of their text
    for (const auto& m : msgs->GetArray()) {
      const rapidjson::Value* role = m.IsObject() ? member(m, "role") : nullptr;
      if (!role || !role->IsString()) {
        err = {"each message must be an object with a string 'role'", "messages"};
        return false;
      }
      last_role = sv(*role);
      leading = leading && (last_role == "system" || last_role == "developer");
      if (leading) prefix_id = mix64(prefix_id ^ fnv1a64(last_role));
      const uint32_t before = prompt;
      prompt += 4;
      const rapidjson::Value* content = member(m, "content");
      if (!content) {
        if (leading) prefix += prompt - before;
        continue;
      }
      if (content->IsString()) {
        prompt += estimate(sv(*content));
        if (leading) prefix_id = mix64(prefix_id ^ fnv1a64(sv(*content)));
      } else if (content->IsArray()) {
        for (const auto& part : content->GetArray()) {
          if (!part.IsObject()) {
            err = {"each content part must be an object", "messages"};
            return false;
          }
          const rapidjson::Value* type = member(part, "type");
          const rapidjson::Value* text = member(part, "text");
          if (type && type->IsString() && sv(*type) == "text" && text && text->IsString()) {
            prompt += estimate(sv(*text));
            if (leading) prefix_id = mix64(prefix_id ^ fnv1a64(sv(*text)));
          }
        }
      } else {
        err = {"message 'content' must be a string or an array of parts", "messages"};
        return false;
      }
      if (leading) prefix += prompt - before;
    }
    c.prompt_tokens = prompt;
    if (settings.prefix_cache_entries > 0) {
      c.report_cached = true;
      if (prefix > 0 && prefix_seen(prefix_id)) c.cached_tokens = prefix;
    }
    uint32_t n = 1;
    bool present = false;
    if (!read_count(doc, "n", 128, n, present, err)) return false;
    uint32_t cap = 0;
    if (!read_cap(doc, cap, err)) return false;

    // Tools: answer with a call unless tool_choice is "none" or a tool result came last.
    const rapidjson::Value* chosen = nullptr;  // the function object of the chosen tool
    if (const rapidjson::Value* tools = member(doc, "tools")) {
      if (!tools->IsArray()) {
        err = {"'tools' must be an array", "tools"};
        return false;
      }
      for (const auto& t : tools->GetArray()) {
        const rapidjson::Value* fn = t.IsObject() ? member(t, "function") : nullptr;
        const rapidjson::Value* name = fn && fn->IsObject() ? member(*fn, "name") : nullptr;
        if (!name || !name->IsString()) {
          err = {"each tool must have function.name", "tools"};
          return false;
        }
      }
      bool use_tools = !tools->Empty() && last_role != "tool";
      if (const rapidjson::Value* tc = member(doc, "tool_choice"); tc && use_tools) {
        if (tc->IsString()) {
          if (sv(*tc) == "none") use_tools = false;
        } else if (tc->IsObject()) {
          const rapidjson::Value* fn = member(*tc, "function");
          const rapidjson::Value* name = fn && fn->IsObject() ? member(*fn, "name") : nullptr;
          if (!name || !name->IsString()) {
            err = {"'tool_choice' object must name a function", "tool_choice"};
            return false;
          }
          for (const auto& t : tools->GetArray()) {
            const rapidjson::Value& f = t["function"];
            if (sv(f["name"]) == sv(*name)) chosen = &f;
          }
          if (!chosen) {
            err = {"tool_choice names a function that is not in 'tools'", "tool_choice"};
            return false;
          }
        } else {
          err = {"'tool_choice' must be a string or an object", "tool_choice"};
          return false;
        }
      }
      if (use_tools && !chosen) chosen = &(*tools)[0]["function"];
      if (!use_tools) chosen = nullptr;
    }

    c.choices.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t seed = mix64(c.seed + i + 1);
      if (!chosen) {
        add_text_choice(c, seed, cap);
        continue;
      }
      add_tool_choice(c, sv((*chosen)["name"]), member(*chosen, "parameters"), seed);
    }
    return true;
  }

  /// POST .../messages, Anthropic's Messages API: model and max_tokens are required; system,
  /// messages, tools, tool_choice and stream are read; sampling parameters are ignored.
  /// input_tokens follow the chat rule (4 per message + the estimate of each text), the system
  /// counting as one message. With the prefix cache on, the tools and the system blocks up to the
  /// last one marked with cache_control form the cached prefix (its tokens: those of the system
  /// blocks, with the system's 4); without a marker there, nothing is cached.
  bool plan_messages(const rapidjson::Document& doc, call& c, bad_request& err) {
    const rapidjson::Value* model = member(doc, "model");
    if (!model) {
      err = {"model: Field required", "model"};
      return false;
    }
    if (!model->IsString()) {
      err = {"model: Input should be a valid string", "model"};
      return false;
    }
    c.model.assign(model->GetString(), model->GetStringLength());
    const rapidjson::Value* max_tokens = member(doc, "max_tokens");
    if (!max_tokens) {
      err = {"max_tokens: Field required", "max_tokens"};
      return false;
    }
    if (!max_tokens->IsUint64() || max_tokens->GetUint64() < 1 ||
        max_tokens->GetUint64() > (1u << 30)) {
      err = {"max_tokens: Input should be an integer between 1 and 1073741824", "max_tokens"};
      return false;
    }
    const auto cap = static_cast<uint32_t>(max_tokens->GetUint64());
    if (const rapidjson::Value* s = member(doc, "stream")) {
      if (!s->IsBool()) {
        err = {"stream: Input should be a valid boolean", "stream"};
        return false;
      }
      c.stream = s->GetBool();
    }
    // The text depends on the request without its stream flag: a stream and a non-stream call
    // of the same request say the same.
    uint64_t h = 0x6d65737361676573ULL;
    for (const auto& m : doc.GetObject()) {
      if (sv(m.name) == "stream") continue;
      h = hash_json(m.value, fnv1a64(sv(m.name), h));
    }
    c.seed = mix64(h ^ mix64(settings.seed));

    // Tools come first in Anthropic's cache order: tools, system, messages.
    std::vector<const rapidjson::Value*> tools;
    uint64_t prefix_id = 0x616e7468726f7069ULL;  // its own domain in the shared prefix LRU
    if (const rapidjson::Value* ts = member(doc, "tools")) {
      if (!ts->IsArray()) {
        err = {"tools: Input should be a valid list", "tools"};
        return false;
      }
      for (const auto& t : ts->GetArray()) {
        const rapidjson::Value* name = t.IsObject() ? member(t, "name") : nullptr;
        const rapidjson::Value* schema = name ? member(t, "input_schema") : nullptr;
        if (!name || !name->IsString() || (schema && !schema->IsObject())) {
          err = {
              "tools: each tool must be an object with a string 'name' (and an object "
              "'input_schema')",
              "tools"};
          return false;
        }
        tools.push_back(&t);
      }
      prefix_id = hash_json(*ts, prefix_id);
    }

    uint32_t prompt = 0;
    uint32_t prefix = 0;  // tokens of the cached prefix (0: none)
    uint64_t marked_id = 0;
    if (const rapidjson::Value* sys = member(doc, "system")) {
      prompt += 4;
      if (sys->IsString()) {
        prompt += estimate(sv(*sys));
      } else if (sys->IsArray()) {
        for (const auto& b : sys->GetArray()) {
          const rapidjson::Value* type = b.IsObject() ? member(b, "type") : nullptr;
          const rapidjson::Value* text = type ? member(b, "text") : nullptr;
          if (!type || !type->IsString() || sv(*type) != "text" || !text || !text->IsString()) {
            err = {"system: each block must be {\"type\":\"text\",\"text\":...}", "system"};
            return false;
          }
          prompt += estimate(sv(*text));
          prefix_id = mix64(prefix_id ^ fnv1a64(sv(*text)));
          if (member(b, "cache_control")) {
            prefix = prompt;
            marked_id = prefix_id;
          }
        }
      } else {
        err = {"system: Input should be a string or a list of text blocks", "system"};
        return false;
      }
    }

    const rapidjson::Value* msgs = member(doc, "messages");
    if (!msgs) {
      err = {"messages: Field required", "messages"};
      return false;
    }
    if (!msgs->IsArray() || msgs->Empty()) {
      err = {"messages: Input should be a non-empty list", "messages"};
      return false;
    }
    bool after_tool_result = false;  // the last message carries a tool_result
    for (const auto& m : msgs->GetArray()) {
      const rapidjson::Value* role = m.IsObject() ? member(m, "role") : nullptr;
      if (!role || !role->IsString() || (sv(*role) != "user" && sv(*role) != "assistant")) {
        err = {"messages: each message must have role \"user\" or \"assistant\"", "messages"};
        return false;
      }
      after_tool_result = false;
      prompt += 4;
      const rapidjson::Value* content = member(m, "content");
      if (!content) {
        err = {"messages: each message must have 'content'", "messages"};
        return false;
      }
      if (content->IsString()) {
        prompt += estimate(sv(*content));
        continue;
      }
      if (!content->IsArray()) {
        err = {"messages: 'content' must be a string or a list of content blocks", "messages"};
        return false;
      }
      for (const auto& b : content->GetArray()) {
        if (!read_message_block(b, prompt, err)) return false;
        if (sv(b["type"]) == "tool_result") after_tool_result = true;
      }
    }
    c.prompt_tokens = prompt;
    if (settings.prefix_cache_entries > 0 && prefix > 0) {
      if (prefix_seen(marked_id)) {
        c.cached_tokens = prefix;
      } else {
        c.cache_created_tokens = prefix;
      }
    }

    // Tools: answer with a tool_use unless tool_choice is none or a tool result came last.
    const rapidjson::Value* chosen = nullptr;  // the chosen tool object
    bool use_tools = !tools.empty() && !after_tool_result;
    if (const rapidjson::Value* tc = member(doc, "tool_choice")) {
      const rapidjson::Value* type = tc->IsObject() ? member(*tc, "type") : nullptr;
      std::string_view kind = type && type->IsString() ? sv(*type) : std::string_view();
      if (kind != "auto" && kind != "any" && kind != "tool" && kind != "none") {
        err = {"tool_choice: 'type' must be \"auto\", \"any\", \"tool\" or \"none\"",
               "tool_choice"};
        return false;
      }
      if (kind == "none") use_tools = false;
      if (kind == "tool") {
        const rapidjson::Value* name = member(*tc, "name");
        if (!name || !name->IsString()) {
          err = {"tool_choice: type \"tool\" needs a string 'name'", "tool_choice"};
          return false;
        }
        for (const rapidjson::Value* t : tools) {
          if (sv((*t)["name"]) == sv(*name)) chosen = t;
        }
        if (!chosen) {
          err = {"tool_choice: the named tool is not in 'tools'", "tool_choice"};
          return false;
        }
      }
    }
    if (use_tools && !chosen) chosen = tools.front();
    if (!use_tools) chosen = nullptr;

    const uint64_t seed = mix64(c.seed + 1);
    if (chosen) {
      add_tool_choice(c, sv((*chosen)["name"]), member(*chosen, "input_schema"), seed);
    } else {
      add_text_choice(c, seed, cap);
    }
    return true;
  }

  /// One content block of a /messages message: text, image, tool_use, tool_result (document,
  /// thinking and redacted_thinking are accepted and not counted). Adds its text tokens.
  static bool read_message_block(const rapidjson::Value& b, uint32_t& prompt, bad_request& err) {
    const rapidjson::Value* type = b.IsObject() ? member(b, "type") : nullptr;
    if (!type || !type->IsString()) {
      err = {"messages: each content block must be an object with a string 'type'", "messages"};
      return false;
    }
    const std::string_view kind = sv(*type);
    auto is = [&](const char* name, bool (rapidjson::Value::*test)() const) {
      const rapidjson::Value* v = member(b, name);
      return v && (v->*test)();
    };
    if (kind == "text") {
      if (!is("text", &rapidjson::Value::IsString)) {
        err = {"messages: a text block needs a string 'text'", "messages"};
        return false;
      }
      prompt += estimate(sv(b["text"]));
    } else if (kind == "image") {
      if (!is("source", &rapidjson::Value::IsObject)) {
        err = {"messages: an image block needs an object 'source'", "messages"};
        return false;
      }
    } else if (kind == "tool_use") {
      if (!is("id", &rapidjson::Value::IsString) || !is("name", &rapidjson::Value::IsString) ||
          !is("input", &rapidjson::Value::IsObject)) {
        err = {"messages: a tool_use block needs a string 'id' and 'name' and an object 'input'",
               "messages"};
        return false;
      }
    } else if (kind == "tool_result") {
      if (!is("tool_use_id", &rapidjson::Value::IsString)) {
        err = {"messages: a tool_result block needs a string 'tool_use_id'", "messages"};
        return false;
      }
      const rapidjson::Value* content = member(b, "content");
      if (content && content->IsString()) {
        prompt += estimate(sv(*content));
      } else if (content && content->IsArray()) {
        for (const auto& part : content->GetArray()) {
          const rapidjson::Value* pt = part.IsObject() ? member(part, "type") : nullptr;
          if (!pt || !pt->IsString()) {
            err = {"messages: tool_result content blocks must have a string 'type'", "messages"};
            return false;
          }
          const rapidjson::Value* text = member(part, "text");
          if (sv(*pt) == "text" && text && text->IsString()) prompt += estimate(sv(*text));
        }
      } else if (content) {
        err = {"messages: tool_result 'content' must be a string or a list of blocks", "messages"};
        return false;
      }
    } else if (kind != "document" && kind != "thinking" && kind != "redacted_thinking") {
      err = {"messages: unknown content block type '" + std::string(kind) + "'", "messages"};
      return false;
    }
    return true;
  }

  bool plan_completions(const rapidjson::Document& doc, call& c, bad_request& err) {
    if (!plan_common(doc, c, err)) return false;
    std::vector<std::string> prompts;
    std::vector<uint32_t> tokens;
    if (!read_inputs(member(doc, "prompt"), "prompt", prompts, tokens, err)) return false;
    uint32_t n = 1;
    bool present = false;
    if (!read_count(doc, "n", 128, n, present, err)) return false;
    if (prompts.size() * n > 1024) {
      err = {"too many choices (prompts x n > 1024)", "n"};
      return false;
    }
    uint32_t cap = 0;
    if (!read_cap(doc, cap, err)) return false;
    c.prompt_tokens = 0;
    for (uint32_t t : tokens) c.prompt_tokens += t;
    c.choices.reserve(prompts.size() * n);
    for (std::size_t p = 0; p < prompts.size(); ++p) {  // choice index p*n + j
      uint64_t pseed = mix64(c.seed ^ fnv1a64(prompts[p]));
      for (uint32_t j = 0; j < n; ++j) add_text_choice(c, mix64(pseed + j + 1), cap);
    }
    return true;
  }

  bool plan_embeddings(const rapidjson::Document& doc, call& c, bad_request& err) {
    const rapidjson::Value* model = member(doc, "model");
    if (!model || !model->IsString()) {
      err = {"you must provide a model parameter", "model"};
      return false;
    }
    c.model.assign(model->GetString(), model->GetStringLength());
    std::vector<std::string> inputs;
    std::vector<uint32_t> tokens;
    if (!read_inputs(member(doc, "input"), "input", inputs, tokens, err)) return false;
    uint32_t dim = settings.embedding_dim == 0 ? 1 : settings.embedding_dim;
    bool present = false;
    if (!read_count(doc, "dimensions", 65536, dim, present, err)) return false;
    bool base64 = false;
    if (const rapidjson::Value* f = member(doc, "encoding_format")) {
      if (!f->IsString() || (sv(*f) != "float" && sv(*f) != "base64")) {
        err = {"'encoding_format' must be \"float\" or \"base64\"", "encoding_format"};
        return false;
      }
      base64 = sv(*f) == "base64";
    }
    uint64_t prompt = 0;
    for (uint32_t t : tokens) prompt += t;
    std::string& out = c.body;
    out.reserve(96 + inputs.size() * (base64 ? dim * 4 / 3 + 64 : dim * 12 + 64));
    out = "{\"object\":\"list\",\"data\":[";
    std::vector<float> vec;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      embed_text(inputs[i], settings.seed, dim, vec);
      if (i) out += ',';
      out += "{\"object\":\"embedding\",\"index\":";
      append_uint(out, i);
      out += ",\"embedding\":";
      if (base64) {
        // Little-endian float32 bytes, as the OpenAI API sends them.
        std::string bytes(vec.size() * 4, '\0');
        for (std::size_t k = 0; k < vec.size(); ++k) {
          uint32_t bits;
          std::memcpy(&bits, &vec[k], 4);
          for (int b = 0; b < 4; ++b) bytes[k * 4 + b] = static_cast<char>(bits >> (8 * b));
        }
        out += '"';
        append_base64(out, bytes.data(), bytes.size());
        out += '"';
      } else {
        out += '[';
        for (std::size_t k = 0; k < vec.size(); ++k) {
          if (k) out += ',';
          append_float(out, vec[k]);
        }
        out += ']';
      }
      out += '}';
    }
    out += "],\"model\":";
    append_json_string(out, c.model);
    out += ",\"usage\":{\"prompt_tokens\":";
    append_uint(out, prompt);
    out += ",\"total_tokens\":";
    append_uint(out, prompt);
    out += "}}";
    c.precomputed = true;
    c.prompt_tokens = static_cast<uint32_t>(prompt);
    return true;
  }

  // ---- scheduling ----------------------------------------------------------------------

  void add_active(int delta, uint64_t now) {
    advance(now);
    active = static_cast<uint32_t>(static_cast<int64_t>(active) + delta);
  }

  /// Grants free slots to waiting calls, FIFO: the first in line waits until it has all the
  /// slots it needs.
  void admit(uint64_t now) {
    while (!wait_queue.empty()) {
      call* c = find(wait_queue.front());
      if (!c || c->ph != phase::waiting) {
        wait_queue.pop_front();
        continue;
      }
      c->slots = std::clamp<uint32_t>(static_cast<uint32_t>(c->choices.size()), 1, max_batch());
      if (active + c->slots > max_batch()) break;
      wait_queue.pop_front();
      --waiting;
      add_active(static_cast<int>(c->slots), now);
      c->ph = phase::prefill;
      prefill.push({now + c->ttft_ns, c->id});
    }
  }

  /// Arms the shared timer for the earliest due event (if earlier than already armed).
  void schedule() {
    if (closed) return;
    uv_update_time(loop);
    uint64_t now = uv_hrtime();
    advance(now);
    uint64_t due = UINT64_MAX;
    if (!prefill.empty()) due = prefill.top().due_ns;
    if (!decode.empty() && active > 0) {
      double dt = std::max(0.0, (decode.top().w - w) / factor(active));
      due = std::min<uint64_t>(due, now + static_cast<uint64_t>(std::min(dt, 86400.0) * 1e9));
    }
    if (due == UINT64_MAX) return;
    if (timer_due_ns != 0 && timer_due_ns <= due) return;
    uint64_t timeout_ms = due <= now ? 0 : (due - now + ms_ns - 1) / ms_ns;
    timer_due_ns = std::max(due, now);
    uv_timer_start(
        timer, [](uv_timer_t* t) { static_cast<impl*>(t->data)->on_timer(); }, timeout_ms, 0);
  }

  void finish_generation(call& c, uint64_t now) {
    c.ph = phase::generated;
    add_active(-static_cast<int>(c.slots), now);
    admit(now);
  }

  /// Generates the tokens due by the decode clock w_due; re-queues or finishes.
  void step(call& c, double w_due, uint64_t now) {
    uint32_t target = c.total_steps;
    if (c.tokens_per_sec > 0) {
      double due = std::floor((w_due - c.w0) * c.tokens_per_sec + 1e-9) + 1;
      if (due < static_cast<double>(c.total_steps)) target = static_cast<uint32_t>(due);
      target = std::max(target, std::min(c.total_steps, c.generated + 1));
    }
    if (target > c.generated) {
      counters.tokens_generated += completion_tokens(c, target) - completion_tokens(c, c.generated);
      c.generated = target;
    }
    if (c.generated >= c.total_steps) {
      finish_generation(c, now);
    } else {
      decode.push({c.w0 + c.generated / c.tokens_per_sec, c.id});
    }
  }

  void on_timer() {
    timer_due_ns = 0;
    dispatching = true;
    uint64_t now = uv_hrtime();
    advance(now);
    while (!prefill.empty() && prefill.top().due_ns <= now + horizon_ns) {
      prefill_entry e = prefill.top();
      prefill.pop();
      call* c = find(e.id);
      if (!c || c->ph != phase::prefill) continue;
      c->ph = phase::decoding;
      double late_s = e.due_ns < now ? static_cast<double>(now - e.due_ns) * 1e-9
                                     : -static_cast<double>(e.due_ns - now) * 1e-9;
      c->w0 = w - factor(active) * late_s;
      step(*c, w + factor(active) * 1e-3, now);
      flush(*c);
    }
    double w_horizon = w + factor(active) * 1e-3;
    while (!decode.empty() && decode.top().w <= w_horizon) {
      decode_entry e = decode.top();
      decode.pop();
      call* c = find(e.id);
      if (!c || c->ph != phase::decoding) continue;
      step(*c, w_horizon, now);
      flush(*c);
      w_horizon = w + factor(active) * 1e-3;
    }
    graveyard.clear();
    dispatching = false;
    schedule();
  }

  void on_idle() {
    dispatching = true;
    std::swap(ready, ready_spare);
    for (call_id id : ready_spare) {
      if (call* c = find(id)) flush(*c);
    }
    ready_spare.clear();
    graveyard.clear();
    dispatching = false;
    if (ready.empty() && idle) uv_idle_stop(idle);
  }

  // ---- delivery ------------------------------------------------------------------------

  void complete(call& c) {
    auto it = calls.find(c.id);
    if (it == calls.end()) return;
    std::unique_ptr<call> owned = std::move(it->second);
    calls.erase(it);
    if (owned->fault) {
      ++counters.errors;
    } else {
      ++counters.completed;
    }
    upstream::call_result r;
    r.status = owned->status;
    r.bytes_received = owned->bytes;
    r.first_byte_ns = owned->first_byte_ns;
    r.done_ns = uv_hrtime();
    auto fn = std::move(owned->h.on_complete);
    if (fn) fn(std::move(r));
  }

  /// Sends a whole answer: headers, body, completion.
  void deliver_whole(call& c, header_vec headers, std::string body) {
    c.headers_sent = true;
    c.first_byte_ns = uv_hrtime();
    if (c.h.on_headers) {
      c.h.on_headers(c.status, std::move(headers));
      if (c.dead) return;
    }
    if (!body.empty()) {
      c.bytes += body.size();
      if (c.h.on_data) {
        c.h.on_data(body);
        if (c.dead) return;
      }
    }
    complete(c);
  }

  void append_chunk_open(std::string& out, const call& c) { out += c.head; }

  void append_chunk_close(std::string& out, const call& c) {
    out += c.include_usage ? "],\"usage\":null}\n\n" : "]}\n\n";
  }

  void build_head(call& c) {
    const bool chat = c.ep == endpoint::chat;
    c.head = chat ? "data: {\"id\":\"chatcmpl-sim-" : "data: {\"id\":\"cmpl-sim-";
    append_hex64(c.head, mix64(c.seed ^ mix64(c.id)));
    c.head += chat ? "\",\"object\":\"chat.completion.chunk\",\"created\":"
                   : "\",\"object\":\"text_completion\",\"created\":";
    append_uint(c.head, c.created);
    c.head += ",\"model\":";
    append_json_string(c.head, c.model);
    c.head += ",\"system_fingerprint\":\"";
    c.head += fingerprint;
    c.head += "\",\"choices\":[";
  }

  void append_role_chunks(std::string& out, const call& c) {
    for (std::size_t i = 0; i < c.choices.size(); ++i) {
      const choice_plan& ch = c.choices[i];
      append_chunk_open(out, c);
      out += "{\"index\":";
      append_uint(out, i);
      if (ch.tool >= 0) {
        const tool_answer& t = c.tools[ch.tool];
        out +=
            ",\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
            "\"id\":\"call_sim_";
        append_hex64(out, t.id);
        out += "\",\"type\":\"function\",\"function\":{\"name\":";
        append_json_string(out, t.name);
        out += ",\"arguments\":\"\"}}],\"refusal\":null}";
      } else {
        out += ",\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}";
      }
      out += ",\"logprobs\":null,\"finish_reason\":null}";
      append_chunk_close(out, c);
    }
  }

  void append_token_chunk(std::string& out, const call& c, std::size_t i, uint32_t k) {
    const choice_plan& ch = c.choices[i];
    append_chunk_open(out, c);
    if (c.ep == endpoint::chat) {
      out += "{\"index\":";
      append_uint(out, i);
      if (ch.tool >= 0) {
        const tool_answer& t = c.tools[ch.tool];
        uint32_t from = k == 0 ? 0 : t.ends[k - 1];
        out += ",\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":";
        append_json_string(out, std::string_view(t.arguments).substr(from, t.ends[k] - from));
        out += "}}]}";
      } else {
        out += ",\"delta\":{\"content\":\"";
        append_token(out, ch.seed, k, ch.length, !ch.capped);
        out += "\"}";
      }
      out += ",\"logprobs\":null,\"finish_reason\":null}";
    } else {
      out += "{\"text\":\"";
      append_token(out, ch.seed, k, ch.length, !ch.capped);
      out += "\",\"index\":";
      append_uint(out, i);
      out += ",\"logprobs\":null,\"finish_reason\":null}";
    }
    append_chunk_close(out, c);
  }

  void append_finish_chunk(std::string& out, const call& c, std::size_t i) {
    append_chunk_open(out, c);
    if (c.ep == endpoint::chat) {
      out += "{\"index\":";
      append_uint(out, i);
      out += ",\"delta\":{},\"logprobs\":null,\"finish_reason\":\"";
    } else {
      out += "{\"text\":\"\",\"index\":";
      append_uint(out, i);
      out += ",\"logprobs\":null,\"finish_reason\":\"";
    }
    out += finish_reason(c, c.choices[i]);
    out += "\"}";
    append_chunk_close(out, c);
  }

  /// Delivers whatever the call has ready. Must not be used on `c` after it returns.
  void flush(call& c) {
    if (c.paused || c.dead) return;
    if (c.ph == phase::canned) {
      deliver_whole(c, std::move(c.headers), std::move(c.body));
      return;
    }
    const bool done = c.ph == phase::generated;
    if (!c.stream) {
      if (!done) return;
      std::string body = c.precomputed                ? std::move(c.body)
                         : c.ep == endpoint::messages ? build_message_body(c)
                                                      : build_body(c);
      deliver_whole(c, {{"content-type", "application/json"}}, std::move(body));
      return;
    }
    if (c.generated == c.emitted && !done) return;
    std::string out;
    if (!c.headers_sent) {
      c.headers_sent = true;
      c.first_byte_ns = uv_hrtime();
      if (c.h.on_headers) {
        c.h.on_headers(200, {{"content-type", "text/event-stream; charset=utf-8"},
                             {"cache-control", "no-cache"}});
        if (c.dead) return;
      }
      if (c.ep == endpoint::messages) {
        out.reserve(640 + std::min(c.generated, max_steps_per_flush) * 96);
        append_stream_start(out, c);
      } else {
        build_head(c);
        out.reserve(c.head.size() *
                    (c.choices.size() * (std::min(c.generated, max_steps_per_flush) + 3) + 2));
        if (c.ep == endpoint::chat) append_role_chunks(out, c);
      }
    }
    // Bounded per call: a long backlog (after resume(), or a fast rate) goes out in pieces,
    // one per loop iteration, so that the consumer's back-pressure can act between them.
    const uint32_t limit = std::min(c.generated, c.emitted + max_steps_per_flush);
    for (uint32_t k = c.emitted; k < limit; ++k) {
      if (c.ep == endpoint::messages) {  // one choice, its end comes with message_stop
        append_stream_delta(out, c, k);
        continue;
      }
      for (std::size_t i = 0; i < c.choices.size(); ++i) {
        if (k >= c.choices[i].length) continue;
        append_token_chunk(out, c, i, k);
        if (k + 1 == c.choices[i].length) append_finish_chunk(out, c, i);
      }
    }
    c.emitted = limit;
    const bool finishing = done && c.emitted == c.generated;
    if (finishing && c.ep == endpoint::messages) {
      append_stream_end(out, c);
    } else if (finishing) {
      if (c.include_usage) {
        append_chunk_open(out, c);
        out += "],";
        append_usage(out, c);
        out += "}\n\n";
      }
      out += "data: [DONE]\n\n";
    }
    if (!out.empty()) {
      c.bytes += out.size();
      if (c.h.on_data) {
        c.h.on_data(out);
        if (c.dead) return;
      }
    }
    if (finishing) {
      complete(c);
    } else if (c.emitted < c.generated && !c.paused) {
      push_ready(c.id);
    }
  }

  // ---- transport -----------------------------------------------------------------------

  call_id start(upstream::call_request&& req, upstream::call_handlers&& h) {
    if (closed) return 0;
    auto owned = std::make_unique<call>();
    call& c = *owned;
    c.id = next_id++;
    c.h = std::move(h);
    c.created = static_cast<uint64_t>(std::time(nullptr));
    ++counters.requests;
    calls.emplace(c.id, std::move(owned));

    std::string_view path = url_path(req.url);
    c.ep = endpoint_of(path);
    c.seed = mix64(fnv1a64(req.body) ^ mix64(settings.seed));
    const bool is_get = req.method == "GET";
    if (in_outage()) {
      // Anthropic answers an overloaded API with 529 overloaded_error.
      set_fault(c, c.ep == endpoint::messages ? 529 : 503,
                "the simulated provider is in an outage window (tcsim test double)");
    } else if (c.ep == endpoint::unknown) {
      set_error(c, 404, "unknown endpoint " + std::string(path), "invalid_request_error", {},
                "unknown_url");
    } else if ((c.ep == endpoint::models) != is_get) {
      set_error(c, 405, "method " + req.method + " not allowed on " + std::string(path),
                "invalid_request_error", {}, "method_not_allowed");
    } else if (c.ep == endpoint::models) {
      set_canned(c, 200, models_body(), false, 0);
    } else if (c.ep == endpoint::moderations) {
      moderate(c, req);
    } else {
      plan(c, req);
    }
    if (c.ph == phase::canned) {
      push_ready(c.id);
      return c.id;
    }
    note_model(c.model);
    for (const auto& ch : c.choices) c.total_steps = std::max(c.total_steps, ch.length);
    if (settings.ttft_ms <= 0 && settings.tokens_per_sec <= 0) {  // instant mode
      c.ph = phase::generated;
      c.generated = c.total_steps;
      counters.tokens_generated += completion_tokens(c, c.total_steps);
      push_ready(c.id);
      return c.id;
    }
    double ttft_ms = std::max(0.0, settings.ttft_ms);
    if (settings.spike_rate > 0 &&
        unit_interval(mix64(c.seed ^ mix64(++fault_counter ^ 0x5a5a5a5aULL))) < settings.spike_rate)
      ttft_ms += std::max(0.0, settings.spike_ms);
    c.ttft_ns = static_cast<uint64_t>(ttft_ms * 1e6);
    c.tokens_per_sec = std::max(0.0, settings.tokens_per_sec);
    c.ph = phase::waiting;
    ++waiting;
    wait_queue.push_back(c.id);
    admit(uv_hrtime());
    schedule();
    return c.id;
  }

  /// Answers POST .../moderations at once (a canned answer): `input` is a string or a
  /// non-empty array of strings, `model` optional.
  void moderate(call& c, const upstream::call_request& req) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(
        req.body.data(), req.body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      set_error(c, 400, "the request body is not a valid JSON object", "invalid_request_error", {},
                {});
      return;
    }
    if (const rapidjson::Value* model = member(doc, "model"); model && !model->IsString()) {
      set_error(c, 400, "'model' must be a string", "invalid_request_error", "model", {});
      return;
    }
    const rapidjson::Value* input = member(doc, "input");
    if (!input) {
      set_error(c, 400, "missing required parameter 'input'", "invalid_request_error", "input", {});
      return;
    }
    std::vector<std::string_view> texts;
    if (input->IsString()) {
      texts.push_back(sv(*input));
    } else if (input->IsArray() && !input->Empty()) {
      for (const auto& x : input->GetArray()) {
        if (!x.IsString()) break;
        texts.push_back(sv(x));
      }
    }
    if (texts.empty() || (input->IsArray() && texts.size() != input->Size())) {
      set_error(c, 400, "'input' must be a string or a non-empty array of strings",
                "invalid_request_error", "input", {});
      return;
    }
    if (settings.error_rate > 0 &&
        unit_interval(mix64(c.seed ^ mix64(++fault_counter))) < settings.error_rate) {
      set_fault(c, static_cast<int>(settings.error_status), "simulated upstream error (tcsim)");
      return;
    }
    std::string out = "{\"id\":\"modr-sim-";
    append_hex64(out, mix64(c.seed ^ mix64(c.id)));
    out += "\",\"model\":";
    append_json_string(out, moderation_model);
    out += ",\"results\":[";
    for (std::size_t i = 0; i < texts.size(); ++i) {
      if (i) out += ',';
      append_moderation_result(out, texts[i]);
    }
    out += "]}";
    set_canned(c, 200, std::move(out), false, 0);
  }

  void plan(call& c, const upstream::call_request& req) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(
        req.body.data(), req.body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      set_error(c, 400, "the request body is not a valid JSON object", "invalid_request_error", {},
                {});
      return;
    }
    bad_request err;
    bool ok = false;
    switch (c.ep) {
      case endpoint::chat:
        ok = plan_chat(doc, c, err);
        break;
      case endpoint::completions:
        ok = plan_completions(doc, c, err);
        break;
      case endpoint::embeddings:
        ok = plan_embeddings(doc, c, err);
        break;
      case endpoint::messages:
        ok = plan_messages(doc, c, err);
        break;
      default:
        break;
    }
    if (!ok) {
      set_error(c, 400, err.message, "invalid_request_error", err.param, {});
      return;
    }
    if (settings.error_rate > 0 &&
        unit_interval(mix64(c.seed ^ mix64(++fault_counter))) < settings.error_rate) {
      c.choices.clear();
      c.tools.clear();
      c.body.clear();
      c.precomputed = false;
      set_fault(c, static_cast<int>(settings.error_status), "simulated upstream error (tcsim)");
    }
  }

  void cancel(call_id id) {
    auto it = calls.find(id);
    if (it == calls.end()) return;
    std::unique_ptr<call> owned = std::move(it->second);
    calls.erase(it);
    owned->dead = true;
    ++counters.cancelled;
    uint64_t now = uv_hrtime();
    if (owned->ph == phase::waiting) {
      --waiting;
    } else if (owned->ph == phase::prefill || owned->ph == phase::decoding) {
      add_active(-static_cast<int>(owned->slots), now);
      admit(now);
      schedule();
    }
    if (dispatching) graveyard.push_back(std::move(owned));
  }

  void close() {
    if (closed) return;
    std::vector<call_id> ids;
    ids.reserve(calls.size());
    for (const auto& kv : calls) ids.push_back(kv.first);
    for (call_id id : ids) cancel(id);
    closed = true;
    auto free_handle = [](uv_handle_t* h) {
      if (h->type == UV_TIMER) {
        delete reinterpret_cast<uv_timer_t*>(h);
      } else {
        delete reinterpret_cast<uv_idle_t*>(h);
      }
    };
    if (timer) uv_close(reinterpret_cast<uv_handle_t*>(timer), free_handle);
    if (idle) uv_close(reinterpret_cast<uv_handle_t*>(idle), free_handle);
    timer = nullptr;
    idle = nullptr;
  }
};

provider::provider(uv_loop_t* loop, config::sim_settings settings)
    : impl_(std::make_unique<impl>(loop, std::move(settings))) {}

provider::~provider() {
  impl_->close();
}

upstream::call_id provider::start(upstream::call_request&& req, upstream::call_handlers&& h) {
  return impl_->start(std::move(req), std::move(h));
}

void provider::cancel(upstream::call_id id) {
  impl_->cancel(id);
}

void provider::pause(upstream::call_id id) {
  if (call* c = impl_->find(id)) c->paused = true;
}

void provider::resume(upstream::call_id id) {
  call* c = impl_->find(id);
  if (!c || !c->paused) return;
  c->paused = false;
  impl_->push_ready(id);
}

std::size_t provider::in_flight() const {
  return impl_->calls.size();
}

void provider::update(const config::sim_settings& settings) {
  impl_->advance(uv_hrtime());
  impl_->settings = settings;
  impl_->admit(uv_hrtime());
  impl_->schedule();
}

const config::sim_settings& provider::settings() const {
  return impl_->settings;
}

sim_stats provider::stats() const {
  sim_stats s = impl_->counters;
  s.active_sequences = impl_->active;
  s.waiting = impl_->waiting;
  impl_->utilisation(uv_hrtime(), s.utilisation, s.utilisation_recent);
  return s;
}

std::string provider::metrics_text() const {
  sim_stats s = stats();
  std::string out;
  out.reserve(1536);
  auto metric = [&out](const char* name, const char* type, const char* help, auto value) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    out += name;
    out += ' ';
    if constexpr (std::is_floating_point_v<decltype(value)>) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", value);
      out += buf;
    } else {
      append_uint(out, value);
    }
    out += '\n';
  };
  metric("tcsim_requests_total", "counter", "Calls started (all endpoints).", s.requests);
  metric("tcsim_completed_total", "counter", "Calls answered in full (not injected errors).",
         s.completed);
  metric("tcsim_errors_total", "counter", "Injected errors and outage answers.", s.errors);
  metric("tcsim_cancelled_total", "counter", "Calls cancelled by the caller.", s.cancelled);
  metric("tcsim_tokens_generated_total", "counter", "Completion tokens generated.",
         s.tokens_generated);
  metric("tcsim_active_sequences", "gauge", "Sequences holding a batch slot.",
         uint64_t{s.active_sequences});
  metric("tcsim_waiting", "gauge", "Calls waiting for a batch slot.", uint64_t{s.waiting});
  metric("tcsim_gpu_utilisation", "gauge",
         "Time average of throughput(n)/throughput(max_batch) since start.", s.utilisation);
  metric("tcsim_gpu_utilisation_recent", "gauge",
         "Time average of throughput(n)/throughput(max_batch) over the last 10 s.",
         s.utilisation_recent);
  return out;
}

void provider::close() {
  impl_->close();
}

}  // namespace tc::sim
