// SSE framing and splitting, and the usage object of OpenAI responses.
//
// The splitter keeps in `buf_` only the raw bytes of the incomplete event at the end of the
// last chunk. Events wholly inside one chunk are dispatched with views into that chunk (no
// copy) unless they have several data lines, which are joined in `data_`. A CR that ends a
// chunk is kept as the last byte of `buf_`, so an LF that opens the next chunk is read as
// the second half of a CRLF.
#include "protocol/openai/sse.hpp"

#include "protocol/openai/json_document.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace tc::openai {

namespace {

constexpr std::size_t keep_capacity = 64 * 1024;  ///< larger scratch buffers are released

/// Finds line ends (the next CR or LF) in [p, end), remembering the next LF so that
/// CR-only streams stay linear.
class line_finder {
 public:
  explicit line_finder(const char* end) : end_(end) {}

  /// The first CR or LF at or after p, or end.
  const char* next(const char* p) {
    if (lf_ < p) {
      const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end_ - p));
      lf_ = lf != nullptr ? static_cast<const char*>(lf) : end_;
    }
    const void* cr = std::memchr(p, '\r', static_cast<std::size_t>(lf_ - p));
    return cr != nullptr ? static_cast<const char*>(cr) : lf_;
  }

 private:
  const char* end_;
  const char* lf_ = nullptr;
};

bool is_eol(char c) {
  return c == '\n' || c == '\r';
}

/// Dispatches every complete event in [begin, end); returns the start of the incomplete
/// event left at the end (end if none). `joined` is scratch for multi-line data.
template <class Callback>
const char* parse_block(const char* begin, const char* end, const Callback& on_event,
                        std::string& joined) {
  line_finder lines(end);
  const char* p = begin;
  const char* event_start = begin;
  std::string_view name;
  std::string_view data;
  bool has_data = false;
  bool use_joined = false;
  while (p < end) {
    const char* eol = lines.next(p);
    if (eol == end) break;  // a partial line: the rest is held back
    const char* next = eol + 1;
    if (*eol == '\r' && next < end && *next == '\n') ++next;
    if (eol == p) {
      if (has_data) on_event(sse_splitter::event{name, data});
      name = {};
      data = {};
      has_data = false;
      use_joined = false;
      event_start = next;
    } else if (*p != ':') {  // a line starting with ':' is a comment
      const std::string_view line(p, static_cast<std::size_t>(eol - p));
      const std::size_t colon = line.find(':');
      const std::string_view key = line.substr(0, colon);
      std::string_view value;
      if (colon != std::string_view::npos) {
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      }
      if (key == "data") {
        if (!has_data) {
          data = value;
          has_data = true;
        } else {
          if (!use_joined) {
            joined.assign(data);
            use_joined = true;
          }
          joined += '\n';
          joined.append(value);
          data = joined;
        }
      } else if (key == "event") {
        name = value;
      }
    }
    p = next;
  }
  return event_start;
}

/// The length of the prefix of `bytes` that completes the event held back, whose last byte
/// is `tail`, or npos if `bytes` does not complete it.
std::size_t event_end(char tail, std::string_view bytes) {
  const char* begin = bytes.data();
  const char* end = begin + bytes.size();
  const char* p = begin;
  if (is_eol(tail)) {  // at the start of a line
    if (tail == '\r' && p < end && *p == '\n') ++p;
    if (p < end && is_eol(*p)) return static_cast<std::size_t>(p + 1 - begin);
  }
  line_finder lines(end);
  while (p < end) {
    const char* eol = lines.next(p);
    if (eol == end) return std::string_view::npos;
    const char* next = eol + 1;
    if (*eol == '\r' && next < end && *next == '\n') ++next;
    if (next < end && is_eol(*next)) return static_cast<std::size_t>(next + 1 - begin);
    p = next;
  }
  return std::string_view::npos;
}

void release_if_large(std::string& s) {
  if (s.capacity() > keep_capacity) std::string().swap(s);
}

uint32_t count_of(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return 0;
  const rapidjson::Value& v = it->value;
  constexpr uint32_t max = std::numeric_limits<uint32_t>::max();
  if (v.IsUint64()) return static_cast<uint32_t>(std::min<uint64_t>(v.GetUint64(), max));
  if (v.IsDouble() && v.GetDouble() > 0) {
    const double d = v.GetDouble();
    return d >= static_cast<double>(max) ? max : static_cast<uint32_t>(d);
  }
  return 0;
}

/// True if every `"usage"` in the text is followed by `: null`: nothing to parse then.
bool usage_only_null(std::string_view json) {
  constexpr std::string_view key = "\"usage\"";
  if (json.size() < key.size()) return true;
  for (std::size_t from = 0;;) {
    // memmem: std::string_view::find stops at every '"', which JSON is full of.
    const void* hit = memmem(json.data() + from, json.size() - from, key.data(), key.size());
    if (hit == nullptr) break;
    std::size_t i =
        static_cast<std::size_t>(static_cast<const char*>(hit) - json.data()) + key.size();
    from = i;
    auto skip_ws = [&] {
      while (i < json.size() &&
             (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) {
        ++i;
      }
    };
    skip_ws();
    if (i >= json.size() || json[i] != ':') return false;
    ++i;
    skip_ws();
    if (json.substr(i, 4) != "null") return false;
  }
  return true;
}

}  // namespace

std::string sse_data(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  out += "data: ";
  // A payload with line breaks becomes several data lines, which the reader joins with \n.
  std::size_t from = 0;
  for (;;) {
    const std::size_t eol = payload.find_first_of("\r\n", from);
    if (eol == std::string_view::npos) break;
    out.append(payload.substr(from, eol - from));
    out += "\ndata: ";
    from = eol + 1;
    if (payload[eol] == '\r' && from < payload.size() && payload[from] == '\n') ++from;
  }
  out.append(payload.substr(from));
  out += "\n\n";
  return out;
}

std::string sse_error(std::string_view envelope) {
  std::string out;
  out.reserve(envelope.size() + 22);
  out += "event: error\ndata: ";
  out += envelope;
  out += "\n\n";
  return out;
}

std::string sse_error(const api_error& e) {
  return sse_error(error_body(e));
}

bool sse_splitter::feed(std::string_view bytes, const std::function<void(const event&)>& on_event) {
  if (!buf_.empty()) {
    const std::size_t n = event_end(buf_.back(), bytes);
    if (n == std::string_view::npos) {
      if (buf_.size() + bytes.size() > max_event_bytes) {
        buf_.clear();
        release_if_large(buf_);
        return false;
      }
      buf_.append(bytes);
      return true;
    }
    buf_.append(bytes.data(), n);
    parse_block(buf_.data(), buf_.data() + buf_.size(), on_event, data_);
    buf_.clear();
    release_if_large(buf_);
    bytes.remove_prefix(n);
  }
  const char* end = bytes.data() + bytes.size();
  const char* rest = parse_block(bytes.data(), end, on_event, data_);
  release_if_large(data_);
  const auto held = static_cast<std::size_t>(end - rest);
  if (held > max_event_bytes) return false;
  buf_.assign(rest, held);
  return true;
}

std::optional<usage> find_usage(std::string_view json) {
  if (usage_only_null(json)) return std::nullopt;  // also when there is no "usage" at all
  if (std::memchr(json.data(), '\0', json.size()) != nullptr) return std::nullopt;
  thread_local std::string text;
  text.assign(json);
  stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  doc.ParseInsitu<rapidjson::kParseIterativeFlag>(text.data());
  std::optional<usage> out;
  if (!doc.HasParseError() && doc.IsObject()) {
    auto it = doc.FindMember("usage");
    if (it != doc.MemberEnd() && it->value.IsObject()) {
      const rapidjson::Value& u = it->value;
      usage r;
      r.prompt_tokens = count_of(u, "prompt_tokens");
      r.completion_tokens = count_of(u, "completion_tokens");
      if (u.HasMember("total_tokens")) {
        r.total_tokens = count_of(u, "total_tokens");
      } else {
        const uint64_t sum = uint64_t{r.prompt_tokens} + r.completion_tokens;
        r.total_tokens =
            static_cast<uint32_t>(std::min<uint64_t>(sum, std::numeric_limits<uint32_t>::max()));
      }
      auto details = u.FindMember("prompt_tokens_details");
      if (details != u.MemberEnd() && details->value.IsObject()) {
        r.cached_tokens = count_of(details->value, "cached_tokens");
      }
      out = r;
    }
  }
  release_if_large(text);
  return out;
}

}  // namespace tc::openai
