// JSON for the account types: the admin API's bodies and replies, and the rows the accounts
// actor stores in RocksDB. Pure; any thread.
//
// Two shapes per type:
//   - `to_json(x)`: the admin API's view. Never a secret or a secret's hash.
//   - `encode(x)` / `decode(bytes, x)`: the stored row, every field (hash included); decode
//     fails on bytes it did not write.
// `apply(json, x, err)` applies the writable fields present in a JSON object onto `x`: create is
// apply() onto a default value, update (PATCH) is apply() onto the stored one. Unknown fields,
// read-only fields and bad values are errors naming the field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/accounts/accounts.hpp"

namespace tc::accounts {

/// Why a body was refused: a message for people and the offending field ("limits.rpm").
struct field_error {
  std::string message;
  std::string param;
};

// Writable fields (everything else in the type is read-only and refused when present):
//   limits:      rpm rpd tpm max_concurrent burst_pct (whole numbers >= 0), daily_budget
//                monthly_budget (numbers >= 0), budget_mode ("hard" | "soft")
//   tenant:      id name currency price_factor (> 0, <= 100) cache_scope ("" or a slug)
//                priority (0-4) limits model_limits ({glob: limits}) disabled
//   project:     id name limits            (tenant comes from the URL)
//   api_key:     tenant project environment name expires_at allowed_models allowed_endpoints
//                priority limits
//   admin_token: name role
//   price:       input_per_m cached_input_per_m output_per_m (numbers >= 0) currency
//                (provider and model come from the URL)
bool apply(std::string_view json, limits& x, field_error& err);
bool apply(std::string_view json, tenant& x, field_error& err);
bool apply(std::string_view json, project& x, field_error& err);
bool apply(std::string_view json, api_key& x, field_error& err);
bool apply(std::string_view json, admin_token& x, field_error& err);
bool apply(std::string_view json, price& x, field_error& err);
/// {"weights":{"model":weight,...}}: whole numbers 0-1000000, at most 64 models, some above 0;
/// whether the models belong to the group is the caller's check.
bool apply(std::string_view json, model_split& x, field_error& err);

// The API view: {"object":"tenant","id":..,...}; limits as an object with every field.
std::string to_json(const limits& x);
std::string to_json(const tenant& x);
std::string to_json(const project& x);
/// With "status": active | expired | revoked | rotated, as of the system clock now.
std::string to_json(const api_key& x);
/// The same with "status" as of unix time `now` (seconds).
std::string to_json(const api_key& x, int64_t now);
std::string to_json(const admin_token& x);
std::string to_json(const price& x);
std::string to_json(const model_split& x);
/// {"object":"list","data":[items...]} from already-serialized items.
std::string list_json(const std::vector<std::string>& items);

/// The status of a key at unix time `now`: "active", "rotated" (replaced, in its grace period),
/// "expired" (past expires_at or past its grace period) or "revoked".
std::string_view key_status(const api_key& k, int64_t now);

// Stored rows.
std::string encode(const tenant& x);
std::string encode(const project& x);
std::string encode(const api_key& x);
std::string encode(const admin_token& x);
std::string encode(const price& x);
std::string encode(const model_split& x);
bool decode(std::string_view bytes, tenant& x);
bool decode(std::string_view bytes, project& x);
bool decode(std::string_view bytes, api_key& x);
bool decode(std::string_view bytes, admin_token& x);
bool decode(std::string_view bytes, price& x);
bool decode(std::string_view bytes, model_split& x);

}  // namespace tc::accounts
