// Tenants, projects, API keys, admin tokens and price tables (issue 4): plain values, the
// shapes the admin API, the RocksDB rows and the auth step share. Pure; any thread.
//
// The model: tenant -> project -> environment (dev | staging | prod) -> API keys. Limits exist
// at tenant, project, key and (per tenant) model level; zero means "no limit".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tc::accounts {

/// Request, token, concurrency and money limits of one scope. 0 = unlimited.
struct limits {
  uint64_t rpm = 0;             ///< requests per rolling minute
  uint64_t rpd = 0;             ///< requests per rolling day
  uint64_t tpm = 0;             ///< input + output tokens per rolling minute
  uint64_t max_concurrent = 0;  ///< requests in flight at once
  uint32_t burst_pct = 0;       ///< a minute may exceed rpm and tpm by this percentage while
                                ///< the rolling 10 minutes stay within 10 x the limit
  double daily_budget = 0;      ///< money per UTC day, in the tenant's currency
  double monthly_budget = 0;    ///< money per UTC month
  bool soft_budget = false;     ///< soft: warn over the budget, reject over 120% of it
  bool empty() const {
    return rpm == 0 && rpd == 0 && tpm == 0 && max_concurrent == 0 && daily_budget == 0 &&
           monthly_budget == 0;
  }
  friend bool operator==(const limits&, const limits&) = default;
};

/// Priority tiers, P0 (highest) to P4.
constexpr uint8_t lowest_priority = 4;

struct api_key;
/// The priority of a request made with `key` (null: anonymous, whose tier is `anonymous`) that
/// sent x-tc-priority `asked` (> lowest_priority: none): the key's own, lowered as asked, or
/// raised as asked no further than the key's max_priority.
uint8_t request_priority(const api_key* key, uint8_t anonymous, uint8_t asked);

struct tenant {
  std::string id;                ///< slug: [a-z0-9_-]{1,64}
  std::string name;              ///< display name
  std::string currency = "CNY";  ///< CNY | USD: what the tenant is charged in
  double price_factor = 1.0;     ///< charged = list price x factor (0.9 discount, 1.2 markup)
  std::string cache_scope;       ///< empty: the tenant's own; else a shared scope name
  std::string filing_id;         ///< its own algorithm-filing ID, over the model's; empty none
  uint8_t priority = 2;          ///< default tier of its keys
  /// Data residency: its requests go only to endpoints in one of these regions (empty: any)
  /// that carry every one of `residency_tags`. Both empty: no rule.
  std::vector<std::string> residency_regions;
  std::vector<std::string> residency_tags;
  limits limit;
  std::map<std::string, limits> model_limits;  ///< model glob -> limits for this tenant
  bool disabled = false;
  int64_t created_at = 0;  ///< unix seconds
  friend bool operator==(const tenant&, const tenant&) = default;
};

struct project {
  std::string tenant;
  std::string id;  ///< slug, unique within the tenant
  std::string name;
  limits limit;
  int64_t created_at = 0;
  friend bool operator==(const project&, const project&) = default;
};

/// An API key as stored: never the secret, only its hash and a visible prefix.
struct api_key {
  std::string id;  ///< "key_" + 16 hex digits
  std::string tenant;
  std::string project;
  std::string environment = "prod";  ///< dev | staging | prod
  std::string name;
  std::string prefix;  ///< the first 12 characters of the secret, for people to recognise it
  std::string hash;    ///< lowercase hex SHA-256 of the whole secret
  int64_t created_at = 0;
  int64_t expires_at = 0;                           ///< unix seconds; 0 = never
  int64_t revoked_at = 0;                           ///< 0 = not revoked
  std::string replaced_by;                          ///< rotation: the id of the new key
  int64_t grace_until = 0;                          ///< rotation: the old key works until then
  std::vector<std::string> allowed_models = {"*"};  ///< globs (* and ?)
  std::vector<std::string> allowed_endpoints = {"chat", "completions", "embeddings", "models"};
  uint8_t priority = 2;  ///< P0..P4
  /// The highest priority (lowest number) a request's x-tc-priority may raise it to; at or
  /// below `priority` (the default, 4) the header can only lower it.
  uint8_t max_priority = lowest_priority;
  limits limit;
  friend bool operator==(const api_key&, const api_key&) = default;
};

/// Roles of admin tokens, weakest first: each can do what the ones before it can.
enum class role : uint8_t { viewer = 0, operator_ = 1, owner = 2 };

struct admin_token {
  std::string id;  ///< "adm_" + 16 hex digits
  std::string name;
  role level = role::viewer;
  std::string prefix;
  std::string hash;
  int64_t created_at = 0;
  int64_t revoked_at = 0;
  friend bool operator==(const admin_token&, const admin_token&) = default;
};

/// What one provider model costs, per 1M tokens.
struct price {
  std::string provider;
  std::string model;
  double input_per_m = 0;
  double cached_input_per_m = 0;
  double output_per_m = 0;
  std::string currency = "CNY";
  friend bool operator==(const price&, const price&) = default;
};

/// The live weights of a model group (routing.groups: canary and A/B splits), stored through
/// the admin API; they replace the configured weights until deleted.
struct model_split {
  std::string group;
  std::map<std::string, uint32_t> weights;  ///< member model -> weight (members left out: 0)
  int64_t updated_at = 0;                   ///< unix seconds
  friend bool operator==(const model_split&, const model_split&) = default;
};

// -- names -----------------------------------------------------------------------------------

std::string_view role_name(role r);
/// "viewer" | "operator" | "owner" -> role; false if unknown.
bool parse_role(std::string_view name, role& out);

/// A slug: 1-64 of [a-z0-9_-], starting with a letter or digit.
bool valid_slug(std::string_view id);
bool valid_environment(std::string_view env);  ///< dev | staging | prod
bool valid_endpoint(std::string_view name);    ///< chat | completions | embeddings | models
bool valid_currency(std::string_view code);    ///< CNY | USD

/// Shell-style glob: `*` any run (also empty), `?` one byte; everything else literal.
bool glob_match(std::string_view pattern, std::string_view text);

// -- secrets ---------------------------------------------------------------------------------

constexpr std::string_view key_scheme = "sk-tc-";
constexpr std::string_view admin_scheme = "tc-adm-";

/// A secret from 32 random bytes: `scheme` + 43 base64url characters (256 bits, no padding).
std::string make_secret(std::string_view scheme, const uint8_t (&random)[32]);
/// The visible prefix stored with a secret (its first 12 characters).
std::string secret_prefix(std::string_view secret);
/// Lowercase hex SHA-256 of a secret: what is stored and looked up.
std::string secret_hash(std::string_view secret);

}  // namespace tc::accounts
