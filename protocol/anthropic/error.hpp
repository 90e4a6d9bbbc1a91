// Anthropic error answers -> the OpenAI error envelope. Anthropic errors read
// {"type":"error","error":{"type":"rate_limit_error","message":"..."}}. Pure; any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "protocol/openai/error.hpp"

namespace tc::anthropic {

/// The OpenAI error for an Anthropic error answer of HTTP `status`, keeping its message:
///   invalid_request_error  -> 400 invalid_request_error (413 request_too_large keeps 413)
///   authentication_error   -> 401 authentication_error
///   permission_error       -> 403 permission_error
///   not_found_error        -> 404 invalid_request_error, code not_found
///   request_too_large      -> 413 invalid_request_error, code request_too_large
///   rate_limit_error       -> 429 rate_limit_error, code rate_limit_exceeded
///   overloaded_error (529) -> 503 service_unavailable
///   timeout_error          -> 504 timeout
///   api_error, other 5xx   -> 502 upstream_error
/// An unknown type or a body that is not an Anthropic error is mapped by `status` (4xx stays
/// an invalid_request_error of that status). `retry_after_s` is the upstream Retry-After, if any;
/// 429 and 503 always carry one (at least 1 s).
openai::api_error to_openai_error(int status, std::string_view body, uint32_t retry_after_s = 0);

}  // namespace tc::anthropic
