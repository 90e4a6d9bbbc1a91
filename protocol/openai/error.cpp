// The OpenAI error envelope and the constructors for each status of the DESIGN error table.
#include "protocol/openai/error.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <utility>

namespace tc::openai {

namespace {

api_error make(int status, std::string type, std::string code, std::string param,
               std::string message) {
  api_error e;
  e.status = status;
  e.type = std::move(type);
  e.code = std::move(code);
  e.param = std::move(param);
  e.message = std::move(message);
  return e;
}

}  // namespace

std::string error_body(const api_error& e) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str_or_null = [&w](const std::string& s) {
    if (s.empty()) {
      w.Null();
    } else {
      w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    }
  };
  w.StartObject();
  w.Key("error");
  w.StartObject();
  w.Key("message");
  w.String(e.message.data(), static_cast<rapidjson::SizeType>(e.message.size()));
  w.Key("type");
  w.String(e.type.data(), static_cast<rapidjson::SizeType>(e.type.size()));
  w.Key("param");
  str_or_null(e.param);
  w.Key("code");
  str_or_null(e.code);
  w.EndObject();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

api_error invalid_request(std::string message, std::string param) {
  return make(400, "invalid_request_error", {}, std::move(param), std::move(message));
}

api_error content_filtered(std::string_view category) {
  std::string msg = "The request was blocked by content moderation";
  if (!category.empty()) {
    msg += " (category: ";
    msg.append(category);
    msg += ')';
  }
  msg += ". Revise the input and try again.";
  return make(400, "invalid_request_error", "content_filter", {}, std::move(msg));
}

api_error context_length_exceeded(uint32_t window, uint32_t prompt_tokens, uint32_t max_tokens) {
  std::string msg = "This model's maximum context length is ";
  msg += std::to_string(window);
  msg += " tokens. However, your messages resulted in about ";
  msg += std::to_string(prompt_tokens);
  msg += " tokens";
  if (max_tokens != 0) {
    msg += " and max_tokens asks for ";
    msg += std::to_string(max_tokens);
  }
  msg += ". Please reduce the length of the messages";
  if (max_tokens != 0) msg += " or max_tokens";
  msg += '.';
  return make(400, "invalid_request_error", "context_length_exceeded", "messages", std::move(msg));
}

api_error model_not_found(std::string_view model) {
  std::string msg = "The model '";
  msg.append(model);
  msg += "' does not exist or you do not have access to it.";
  return make(404, "invalid_request_error", "model_not_found", "model", std::move(msg));
}

api_error unknown_endpoint(std::string_view method, std::string_view path) {
  std::string msg = "Unknown request URL: ";
  msg.append(method);
  msg += ' ';
  msg.append(path);
  msg += '.';
  return make(404, "invalid_request_error", "unknown_url", {}, std::move(msg));
}

api_error method_not_allowed(std::string_view method, std::string_view path) {
  std::string msg = "Method not allowed: ";
  msg.append(method);
  msg += ' ';
  msg.append(path);
  msg += '.';
  return make(405, "invalid_request_error", "method_not_allowed", {}, std::move(msg));
}

api_error request_too_large(std::size_t limit_bytes) {
  std::string msg =
      "Request body too large: the limit is " + std::to_string(limit_bytes) + " bytes.";
  return make(413, "invalid_request_error", "request_too_large", {}, std::move(msg));
}

api_error upstream_error(std::string message) {
  return make(502, "upstream_error", "upstream_error", {}, std::move(message));
}

api_error upstream_timeout(std::string message) {
  return make(504, "timeout", "timeout", {}, std::move(message));
}

api_error service_unavailable(std::string message, uint32_t retry_after_s) {
  api_error e = make(503, "service_unavailable", "service_unavailable", {}, std::move(message));
  e.retry_after_s = retry_after_s;
  return e;
}

api_error unauthenticated(std::string code, std::string message) {
  return make(401, "authentication_error", std::move(code), {}, std::move(message));
}

api_error permission_denied(std::string message, std::string param) {
  return make(403, "permission_error", "permission_denied", std::move(param), std::move(message));
}

api_error rate_limited(std::string code, std::string message, uint32_t retry_after_s) {
  api_error e = make(429, code == "insufficient_quota" ? "insufficient_quota" : "rate_limit_error",
                     std::move(code), {}, std::move(message));
  e.retry_after_s = retry_after_s < 1 ? 1 : retry_after_s;
  return e;
}

}  // namespace tc::openai
