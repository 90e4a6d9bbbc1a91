// The mapping of Anthropic error types onto the OpenAI error table (protocol/openai/error).
#include "protocol/anthropic/error.hpp"

#include "protocol/anthropic/json.hpp"
#include "protocol/openai/json_document.hpp"

#include <string>
#include <utility>

namespace tc::anthropic {

namespace {

constexpr std::size_t max_message = 4096;  ///< bytes of an upstream message kept

openai::api_error make(int status, std::string type, std::string code, std::string message) {
  openai::api_error e;
  e.status = status;
  e.type = std::move(type);
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

openai::api_error by_type(int status, std::string_view type, std::string message,
                          uint32_t retry_after_s) {
  if (type == "invalid_request_error") {
    if (status == 413) return make(413, "invalid_request_error", "request_too_large", message);
    return openai::invalid_request(std::move(message));
  }
  if (type == "authentication_error") {
    return openai::unauthenticated("invalid_api_key", std::move(message));
  }
  if (type == "permission_error") return openai::permission_denied(std::move(message));
  if (type == "not_found_error") {
    return make(404, "invalid_request_error", "not_found", std::move(message));
  }
  if (type == "request_too_large") {
    return make(413, "invalid_request_error", "request_too_large", std::move(message));
  }
  if (type == "rate_limit_error") {
    return openai::rate_limited("rate_limit_exceeded", std::move(message), retry_after_s);
  }
  if (type == "overloaded_error") {
    return openai::service_unavailable(std::move(message), retry_after_s < 1 ? 1 : retry_after_s);
  }
  if (type == "timeout_error") return openai::upstream_timeout(std::move(message));
  if (type == "api_error") return openai::upstream_error(std::move(message));
  // Unknown type: by status.
  switch (status) {
    case 400:
      return openai::invalid_request(std::move(message));
    case 401:
      return openai::unauthenticated("invalid_api_key", std::move(message));
    case 403:
      return openai::permission_denied(std::move(message));
    case 404:
      return make(404, "invalid_request_error", "not_found", std::move(message));
    case 413:
      return make(413, "invalid_request_error", "request_too_large", std::move(message));
    case 429:
      return openai::rate_limited("rate_limit_exceeded", std::move(message), retry_after_s);
    case 503:
    case 529:
      return openai::service_unavailable(std::move(message), retry_after_s < 1 ? 1 : retry_after_s);
    case 504:
      return openai::upstream_timeout(std::move(message));
    default:
      break;
  }
  if (status >= 400 && status < 500) return make(status, "invalid_request_error", {}, message);
  return openai::upstream_error(std::move(message));
}

/// `s` cut to at most max_message bytes, at a UTF-8 boundary.
std::string bounded(std::string_view s) {
  if (s.size() <= max_message) return std::string(s);
  std::size_t n = max_message;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::string out(s.substr(0, n));
  out += "...";
  return out;
}

}  // namespace

openai::api_error to_openai_error(int status, std::string_view body, uint32_t retry_after_s) {
  openai::stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  std::string_view type, message;
  if (json::parse(body, doc) == json::parse_status::ok && doc.IsObject()) {
    if (const json::value* err = json::find(doc, "error"); err != nullptr && err->IsObject()) {
      type = json::find_string(*err, "type");
      message = json::find_string(*err, "message");
    }
  }
  std::string text;
  if (!message.empty()) {
    text = bounded(message);
  } else {
    text = "The Anthropic upstream answered HTTP " + std::to_string(status);
    if (!type.empty()) {
      text += " (";
      text += bounded(type);
      text += ')';
    }
    text += " without an error message.";
  }
  return by_type(status, type, std::move(text), retry_after_s);
}

}  // namespace tc::anthropic
