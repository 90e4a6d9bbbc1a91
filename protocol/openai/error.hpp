// OpenAI error envelope: {"error":{"message","type","param","code"}} and the statuses of the
// DESIGN error table. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tc::openai {

/// One error answer. `param` and `code` empty serialize as JSON null.
struct api_error {
  int status = 500;
  std::string type;            ///< invalid_request_error, authentication_error, ...
  std::string code;            ///< model_not_found, request_too_large, ...
  std::string param;           ///< offending request field, if any
  std::string message;         ///< for people
  uint32_t retry_after_s = 0;  ///< > 0: the response carries Retry-After

  template <class Inspector>
  friend auto inspect(Inspector& f, api_error& x) {
    return f(x.status, x.type, x.code, x.param, x.message, x.retry_after_s);
  }
};

/// The JSON envelope for an error.
std::string error_body(const api_error& e);

/// 400 invalid_request_error (malformed JSON, wrong field type, missing field).
api_error invalid_request(std::string message, std::string param = {});
/// 400 content_filter: moderation blocked the request (`category` names why, for people).
api_error content_filtered(std::string_view category);
/// 400 context_length_exceeded: the prompt (plus max_tokens) does not fit the model's window.
api_error context_length_exceeded(uint32_t window, uint32_t prompt_tokens, uint32_t max_tokens);
/// 404 model_not_found.
api_error model_not_found(std::string_view model);
/// 404 for a path that is not an endpoint.
api_error unknown_endpoint(std::string_view method, std::string_view path);
/// 405 for a known path with the wrong method.
api_error method_not_allowed(std::string_view method, std::string_view path);
/// 413 request_too_large.
api_error request_too_large(std::size_t limit_bytes);
/// 502 upstream_error (upstream failed after failover was exhausted).
api_error upstream_error(std::string message);
/// 504 timeout.
api_error upstream_timeout(std::string message);
/// 503 service_unavailable with Retry-After.
api_error service_unavailable(std::string message, uint32_t retry_after_s);
/// 401 authentication_error; `code` is invalid_api_key (or missing_api_key, expired_api_key ...).
api_error unauthenticated(std::string code, std::string message);
/// 403 permission_error: the key may not use this model or endpoint.
api_error permission_denied(std::string message, std::string param = {});
/// 429 with Retry-After; `code` is rate_limit_exceeded or insufficient_quota.
api_error rate_limited(std::string code, std::string message, uint32_t retry_after_s);

}  // namespace tc::openai
