#include "node/admin_api.hpp"

#include <charconv>
#include <chrono>
#include <optional>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "actors/audit_writer.hpp"
#include "actors/ledger.hpp"
#include "protocol/accounts/json.hpp"
#include "protocol/billing/usage.hpp"
#include "protocol/messages.hpp"
#include "protocol/openai/error.hpp"

namespace tc::node {

namespace {

constexpr auto actor_timeout = std::chrono::seconds(10);

admin_answer json(int status, std::string body) {
  admin_answer a;
  a.status = status;
  a.body = std::move(body);
  return a;
}

admin_answer error(const openai::api_error& e) {
  return json(e.status, openai::error_body(e));
}

admin_answer error(int status, std::string type, std::string code, std::string message,
                   std::string param = {}) {
  openai::api_error e;
  e.status = status;
  e.type = std::move(type);
  e.code = std::move(code);
  e.message = std::move(message);
  e.param = std::move(param);
  return error(e);
}

admin_answer bad_request(std::string message, std::string param = {}) {
  return error(openai::invalid_request(std::move(message), std::move(param)));
}

admin_answer not_found(std::string message) {
  return error(404, "invalid_request_error", "not_found", std::move(message));
}

admin_answer method_not_allowed(const admin_call& c) {
  return error(openai::method_not_allowed(c.method, c.path));
}

std::vector<std::string> segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string query(const admin_call& c, std::string_view name) {
  for (const auto& [k, v] : c.query)
    if (k == name) return v;
  return {};
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The role the call's admin token grants; false with `refusal` set if it grants none.
bool authorize(const admin_api_deps& d, const actors::directory& dir, const admin_call& c,
               accounts::role& granted, admin_answer& refusal) {
  if (d.bootstrap_hash.empty() && dir.admin_tokens.empty()) {
    granted = accounts::role::owner;  // no admin credentials exist yet: open (see docs/api.md)
    return true;
  }
  std::string_view h = c.authorization;
  constexpr std::string_view scheme = "Bearer ";
  if (h.size() <= scheme.size() || h.substr(0, scheme.size()) != scheme) {
    refusal = error(401, "authentication_error", "missing_admin_token",
                    "This admin call needs 'Authorization: Bearer <admin token>'.");
    return false;
  }
  const std::string hash = accounts::secret_hash(h.substr(scheme.size()));
  if (!d.bootstrap_hash.empty() && hash == d.bootstrap_hash) {
    granted = accounts::role::owner;
    return true;
  }
  const accounts::admin_token* t = dir.admin_by_secret_hash(hash);
  if (t == nullptr || t->revoked_at != 0) {
    refusal = error(401, "authentication_error", "invalid_admin_token",
                    t == nullptr ? "Unknown admin token." : "This admin token has been revoked.");
    return false;
  }
  granted = t->level;
  return true;
}

/// Sends an accounts_op and turns the result into an answer (the secret merged in, if any).
admin_answer change(const admin_api_deps& d, accounts_op op) {
  caf::scoped_actor self{*d.system};
  admin_answer out;
  self->request(d.accounts, actor_timeout, std::move(op))
      .receive(
          [&](accounts_result& r) {
            if (r.status >= 300) {
              if (r.status == 409) {
                out = error(409, "invalid_request_error", "conflict", r.message, r.param);
              } else if (r.status == 404) {
                out = error(404, "invalid_request_error", "not_found", r.message, r.param);
              } else if (r.status == 503) {
                out = error(openai::service_unavailable(r.message, 1));
              } else {
                out = bad_request(r.message, r.param);
              }
              return;
            }
            if (!r.secret.empty() && !r.json.empty() && r.json.back() == '}') {
              r.json.pop_back();
              r.json += ",\"secret\":\"" + r.secret + "\"}";  // base64url: nothing to escape
            }
            out = json(r.status, std::move(r.json));
          },
          [&](const caf::error& e) {
            out = error(openai::service_unavailable(
                "The accounts service did not answer: " + caf::to_string(e), 1));
          });
  return out;
}

// -- tenants and projects --------------------------------------------------------------------

admin_answer tenants(const admin_api_deps& d, const actors::directory& dir, const admin_call& c,
                     const std::vector<std::string>& seg) {
  // seg: tenants [id [projects [pid]]]
  if (seg.size() == 1) {
    if (c.method == "GET") {
      std::vector<std::string> items;
      for (const auto& [_, t] : dir.tenants) items.push_back(accounts::to_json(t));
      return json(200, accounts::list_json(items));
    }
    if (c.method != "POST") return method_not_allowed(c);
    accounts::tenant t;
    accounts::field_error fe;
    if (!accounts::apply(c.body, t, fe)) return bad_request(fe.message, fe.param);
    if (t.id.empty()) return bad_request("A tenant needs an 'id'.", "id");
    accounts_op op;
    op.op = accounts_op::create_tenant;
    op.tenant = std::move(t);
    return change(d, std::move(op));
  }
  const std::string& id = seg[1];
  const accounts::tenant* current = dir.tenant(id);
  if (seg.size() == 2) {
    if (current == nullptr) return not_found("No tenant '" + id + "'.");
    if (c.method == "GET") return json(200, accounts::to_json(*current));
    accounts_op op;
    op.id = id;
    if (c.method == "DELETE") {
      op.op = accounts_op::delete_tenant;
      return change(d, std::move(op));
    }
    if (c.method != "PATCH") return method_not_allowed(c);
    accounts::tenant t = *current;
    accounts::field_error fe;
    if (!accounts::apply(c.body, t, fe)) return bad_request(fe.message, fe.param);
    if (t.id != id) return bad_request("A tenant's 'id' cannot change.", "id");
    op.op = accounts_op::update_tenant;
    op.tenant = std::move(t);
    return change(d, std::move(op));
  }
  if (seg[2] != "projects" || seg.size() > 4) return not_found("No such admin path.");
  if (current == nullptr) return not_found("No tenant '" + id + "'.");
  if (seg.size() == 3) {
    if (c.method == "GET") {
      std::vector<std::string> items;
      for (const auto& [_, p] : dir.projects)
        if (p.tenant == id) items.push_back(accounts::to_json(p));
      return json(200, accounts::list_json(items));
    }
    if (c.method != "POST") return method_not_allowed(c);
    accounts::project p;
    p.tenant = id;
    accounts::field_error fe;
    if (!accounts::apply(c.body, p, fe)) return bad_request(fe.message, fe.param);
    if (p.id.empty()) return bad_request("A project needs an 'id'.", "id");
    accounts_op op;
    op.op = accounts_op::create_project;
    op.project = std::move(p);
    return change(d, std::move(op));
  }
  const std::string& pid = seg[3];
  const accounts::project* proj = dir.project(id, pid);
  if (proj == nullptr) return not_found("No project '" + id + "/" + pid + "'.");
  if (c.method == "GET") return json(200, accounts::to_json(*proj));
  accounts_op op;
  op.id = pid;
  op.project.tenant = id;
  if (c.method == "DELETE") {
    op.op = accounts_op::delete_project;
    return change(d, std::move(op));
  }
  if (c.method != "PATCH") return method_not_allowed(c);
  accounts::project p = *proj;
  accounts::field_error fe;
  if (!accounts::apply(c.body, p, fe)) return bad_request(fe.message, fe.param);
  if (p.id != pid) return bad_request("A project's 'id' cannot change.", "id");
  op.op = accounts_op::update_project;
  op.project = std::move(p);
  return change(d, std::move(op));
}

// -- keys and admin tokens -------------------------------------------------------------------

/// The body of POST /v1/keys/{id}/rotate: empty, or {"grace_s": N} with N whole seconds up
/// to 90 days. nullopt when valid (`grace_s` set if given).
std::optional<admin_answer> read_grace(const std::string& body, int64_t& grace_s) {
  if (body.empty()) return std::nullopt;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.c_str(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return bad_request("The body must be a JSON object.");
  for (const auto& m : doc.GetObject()) {
    const std::string name(m.name.GetString(), m.name.GetStringLength());
    if (name != "grace_s") return bad_request("Unknown field '" + name + "'.", name);
    if (!m.value.IsUint64() || m.value.GetUint64() > 90 * 86400)
      return bad_request("'grace_s' must be a whole number of seconds up to 7776000.", "grace_s");
    grace_s = static_cast<int64_t>(m.value.GetUint64());
  }
  return std::nullopt;
}

admin_answer keys(const admin_api_deps& d, const actors::directory& dir, const admin_call& c,
                  const std::vector<std::string>& seg) {
  const int64_t now = unix_now();
  if (seg.size() == 1) {
    if (c.method == "GET") {
      const std::string tenant = query(c, "tenant");
      const std::string project = query(c, "project");
      std::vector<std::string> items;
      for (const auto& [_, k] : dir.keys) {
        if (!tenant.empty() && k.tenant != tenant) continue;
        if (!project.empty() && k.project != project) continue;
        items.push_back(accounts::to_json(k, now));
      }
      return json(200, accounts::list_json(items));
    }
    if (c.method != "POST") return method_not_allowed(c);
    accounts::api_key k;
    accounts::field_error fe;
    if (!accounts::apply(c.body, k, fe)) return bad_request(fe.message, fe.param);
    if (k.tenant.empty()) return bad_request("A key needs a 'tenant'.", "tenant");
    accounts_op op;
    op.op = accounts_op::create_key;
    op.key = std::move(k);
    return change(d, std::move(op));
  }
  const std::string& id = seg[1];
  const accounts::api_key* current = dir.key(id);
  if (current == nullptr) return not_found("No key '" + id + "'.");
  accounts_op op;
  op.id = id;
  if (seg.size() == 2) {
    if (c.method == "GET") return json(200, accounts::to_json(*current, now));
    if (c.method != "PATCH") return method_not_allowed(c);
    accounts::api_key k = *current;
    accounts::field_error fe;
    if (!accounts::apply(c.body, k, fe)) return bad_request(fe.message, fe.param);
    if (k.tenant != current->tenant)
      return bad_request("A key's 'tenant' cannot change.", "tenant");
    op.op = accounts_op::update_key;
    op.key = std::move(k);
    return change(d, std::move(op));
  }
  if (seg.size() != 3 || c.method != "POST") return not_found("No such admin path.");
  if (seg[2] == "revoke") {
    op.op = accounts_op::revoke_key;
    return change(d, std::move(op));
  }
  if (seg[2] != "rotate") return not_found("No such admin path.");
  op.op = accounts_op::rotate_key;
  op.grace_s = 86400;
  if (auto bad = read_grace(c.body, op.grace_s)) return *bad;
  return change(d, std::move(op));
}

admin_answer admin_tokens(const admin_api_deps& d, const actors::directory& dir,
                          const admin_call& c, const std::vector<std::string>& seg) {
  if (seg.size() == 1) {
    if (c.method == "GET") {
      std::vector<std::string> items;
      for (const auto& [_, t] : dir.admin_tokens) items.push_back(accounts::to_json(t));
      return json(200, accounts::list_json(items));
    }
    if (c.method != "POST") return method_not_allowed(c);
    accounts::admin_token t;
    accounts::field_error fe;
    if (!accounts::apply(c.body, t, fe)) return bad_request(fe.message, fe.param);
    accounts_op op;
    op.op = accounts_op::create_admin_token;
    op.admin = std::move(t);
    return change(d, std::move(op));
  }
  if (seg.size() != 2 || c.method != "DELETE") return method_not_allowed(c);
  accounts_op op;
  op.op = accounts_op::revoke_admin_token;
  op.id = seg[1];
  return change(d, std::move(op));
}

// -- prices ----------------------------------------------------------------------------------

admin_answer prices(const admin_api_deps& d, const actors::directory& dir, const admin_call& c,
                    const std::vector<std::string>& seg) {
  if (seg.size() == 1) {
    if (c.method != "GET") return method_not_allowed(c);
    std::map<std::string, accounts::price> merged;
    for (const auto& p : d.config_prices) merged[p.provider + "/" + p.model] = p;
    for (const auto& [k, p] : dir.prices) merged[k] = p;
    std::vector<std::string> items;
    for (const auto& [_, p] : merged) items.push_back(accounts::to_json(p));
    return json(200, accounts::list_json(items));
  }
  if (seg.size() < 3) return not_found("Prices are addressed as /v1/prices/{provider}/{model}.");
  accounts::price p;
  p.provider = seg[1];
  for (size_t i = 2; i < seg.size(); ++i) p.model += (i > 2 ? "/" : "") + seg[i];
  bool known = false;
  for (const auto& cp : d.config_prices) {
    if (cp.provider == p.provider && cp.model == p.model) {
      known = true;
      if (c.method == "PUT") p = cp;  // the config's values are the base of a partial PUT
    }
  }
  if (!known) return not_found("No model '" + p.model + "' at provider '" + p.provider + "'.");
  accounts_op op;
  if (c.method == "DELETE") {
    op.op = accounts_op::delete_price;
    op.price = std::move(p);
    return change(d, std::move(op));
  }
  if (c.method != "PUT") return method_not_allowed(c);
  if (auto it = dir.prices.find(p.provider + "/" + p.model); it != dir.prices.end()) p = it->second;
  accounts::field_error fe;
  if (!accounts::apply(c.body, p, fe)) return bad_request(fe.message, fe.param);
  op.op = accounts_op::put_price;
  op.price = std::move(p);
  return change(d, std::move(op));
}

// -- model groups (routing.groups: canary and A/B weights) ------------------------------------

/// A group as the API shows it: each model's weight in force and its configured weight.
std::string group_json(const admin_api_deps::group_config& g, const accounts::model_split* live) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto text = [&w](std::string_view k, std::string_view v) {
    w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  w.StartObject();
  text("object", "model_group");
  text("id", g.name);
  w.Key("models");
  w.StartArray();
  for (const auto& [model, configured] : g.members) {
    uint32_t now = configured;
    if (live != nullptr) {
      auto it = live->weights.find(model);
      now = it == live->weights.end() ? 0 : it->second;
    }
    w.StartObject();
    text("model", model);
    w.Key("weight");
    w.Uint(now);
    w.Key("configured_weight");
    w.Uint(configured);
    w.EndObject();
  }
  w.EndArray();
  text("stable", g.members.front().first);
  w.Key("stored");
  w.Bool(live != nullptr);
  w.Key("updated_at");
  w.Int64(live != nullptr ? live->updated_at : 0);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

/// GET /v1/routing/groups[/{group}]; PUT one's weights, POST .../rollback (all to the stable
/// model), DELETE (back to the configured weights). Stored weights survive restarts.
admin_answer groups(const admin_api_deps& d, const actors::directory& dir, const admin_call& c,
                    const std::vector<std::string>& seg) {
  auto live_of = [&](const std::string& g) -> const accounts::model_split* {
    auto it = dir.splits.find(g);
    return it == dir.splits.end() ? nullptr : &it->second;
  };
  if (seg.size() == 2) {
    if (c.method != "GET") return method_not_allowed(c);
    std::vector<std::string> items;
    for (const auto& g : d.config_groups) items.push_back(group_json(g, live_of(g.name)));
    return json(200, accounts::list_json(items));
  }
  if (seg.size() != 3 && !(seg.size() == 4 && seg[3] == "rollback"))
    return not_found("Groups are addressed as /v1/routing/groups/{group}[/rollback].");
  const admin_api_deps::group_config* g = nullptr;
  for (const auto& cg : d.config_groups)
    if (cg.name == seg[2]) g = &cg;
  if (g == nullptr) return not_found("No model group '" + seg[2] + "'.");
  // A change answers with the group as it now is.
  auto changed = [&](accounts_op op) {
    const bool stored = op.op == accounts_op::put_split;
    accounts::model_split now = op.split;
    admin_answer a = change(d, std::move(op));
    if (a.status != 200) return a;
    rapidjson::Document doc;
    doc.Parse(a.body.c_str(), a.body.size());
    if (stored && doc.IsObject() && doc.HasMember("updated_at") && doc["updated_at"].IsInt64())
      now.updated_at = doc["updated_at"].GetInt64();
    return json(200, group_json(*g, stored ? &now : nullptr));
  };
  accounts_op op;
  if (seg.size() == 4) {  // rollback: every request to the stable model, at once
    if (c.method != "POST") return method_not_allowed(c);
    op.op = accounts_op::put_split;
    op.split.group = g->name;
    for (const auto& [model, w] : g->members) op.split.weights[model] = 0;
    op.split.weights[g->members.front().first] = 1;
    return changed(std::move(op));
  }
  if (c.method == "GET") return json(200, group_json(*g, live_of(g->name)));
  if (c.method == "DELETE") {  // back to the configured weights
    op.op = accounts_op::delete_split;
    op.id = g->name;
    return changed(std::move(op));
  }
  if (c.method != "PUT") return method_not_allowed(c);
  accounts::model_split sp;
  sp.group = g->name;
  accounts::field_error fe;
  if (!accounts::apply(c.body, sp, fe)) return bad_request(fe.message, fe.param);
  for (const auto& [model, w] : sp.weights) {
    bool member = false;
    for (const auto& m : g->members) member = member || m.first == model;
    if (!member)
      return bad_request("The group '" + sp.group + "' has no model '" + model + "'.",
                         "weights." + model);
  }
  op.op = accounts_op::put_split;
  op.split = std::move(sp);
  return changed(std::move(op));
}

// -- usage -----------------------------------------------------------------------------------

admin_answer usage(const admin_api_deps& d, const admin_call& c,
                   const std::vector<std::string>& seg) {
  if (c.method != "GET") return method_not_allowed(c);
  const int64_t today = billing::day_of(unix_now() * 1000);
  int64_t from = today, to = today;
  for (auto [name, out] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
    std::string v = query(c, name);
    if (!v.empty() && !billing::parse_day(v, *out))
      return bad_request(std::string("'") + name + "' must be a day as YYYY-MM-DD.", name);
  }
  if (from > to) return bad_request("'from' is after 'to'.", "from");
  std::string format = query(c, "format");
  if (format.empty()) format = "json";
  if (format != "json" && format != "csv")
    return bad_request("'format' must be json or csv.", "format");
  caf::scoped_actor self{*d.system};
  admin_answer out;
  auto on_text = [&](std::string& text) {
    out = json(200, std::move(text));
    if (format == "csv") out.content_type = "text/csv";
  };
  auto on_error = [&](const caf::error& e) {
    if (e == caf::sec::invalid_argument) {
      std::string what = self->system().render(e);
      out = bad_request("Bad query: " + what, "group_by");
    } else {
      out = error(
          openai::service_unavailable("The ledger did not answer: " + self->system().render(e), 1));
    }
  };
  if (seg.size() == 1) {
    self->request(d.ledger, actor_timeout, actors::ledger_report_atom::value, from, to,
                  query(c, "tenant"), query(c, "project"), query(c, "key"), query(c, "group_by"),
                  format)
        .receive(on_text, on_error);
    return out;
  }
  if (seg.size() != 2 || seg[1] != "records") return not_found("No such admin path.");
  uint64_t limit = 1000;
  if (std::string l = query(c, "limit"); !l.empty()) {
    try {
      limit = std::stoull(l);
    } catch (...) {
      return bad_request("'limit' must be a whole number.", "limit");
    }
  }
  self->request(d.ledger, actor_timeout, actors::ledger_records_atom::value, from, to,
                query(c, "tenant"), limit, format)
      .receive(on_text, on_error);
  return out;
}

// -- audit -----------------------------------------------------------------------------------

constexpr int64_t ms_per_day = 86'400'000;
/// 10000-01-01T00:00:00Z: after every time the parsers below accept.
constexpr int64_t max_time_ms = 253'402'300'800'000;

/// A whole decimal number of at most `max_digits` digits, no sign, no spaces.
bool parse_digits(std::string_view s, size_t max_digits, uint64_t& out) {
  if (s.empty() || s.size() > max_digits) return false;
  for (char ch : s)
    if (ch < '0' || ch > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

/// The time of day and offset after an RFC 3339 date: "THH:MM:SS[.frac](Z|+HH:MM|-HH:MM)", as
/// milliseconds to add to the day's start (UTC). A space stands for '+': an unencoded '+' in a
/// query string arrives as one.
std::optional<int64_t> parse_rfc3339_time(std::string_view t) {
  uint64_t hh = 0, mm = 0, ss = 0;
  if (t.size() < 10 || (t[0] != 'T' && t[0] != 't') || t[3] != ':' || t[6] != ':' ||
      !parse_digits(t.substr(1, 2), 2, hh) || !parse_digits(t.substr(4, 2), 2, mm) ||
      !parse_digits(t.substr(7, 2), 2, ss) || hh > 23 || mm > 59 || ss > 59)
    return std::nullopt;
  int64_t ms = static_cast<int64_t>((hh * 3600 + mm * 60 + ss) * 1000);
  t.remove_prefix(9);
  if (t[0] == '.') {
    size_t n = 1;
    while (n < t.size() && t[n] >= '0' && t[n] <= '9') ++n;
    if (n == 1 || n > 10) return std::nullopt;  // 1 to 9 digits
    int64_t scale = 100;
    for (size_t i = 1; i < n && i <= 3; ++i, scale /= 10) ms += (t[i] - '0') * scale;
    // Records are stamped in whole milliseconds: ts >= x and ts < x both hold exactly when they
    // hold for x rounded up, so a finer time rounds up.
    if (n > 4 && t.substr(4, n - 4).find_first_not_of('0') != std::string_view::npos) ms += 1;
    t.remove_prefix(n);
  }
  if (t == "Z" || t == "z") return ms;
  uint64_t oh = 0, om = 0;
  if (t.size() != 6 || (t[0] != '+' && t[0] != '-' && t[0] != ' ') || t[3] != ':' ||
      !parse_digits(t.substr(1, 2), 2, oh) || !parse_digits(t.substr(4, 2), 2, om) || oh > 23 ||
      om > 59)
    return std::nullopt;
  const int64_t offset = static_cast<int64_t>((oh * 60 + om) * 60'000);
  return t[0] == '-' ? ms + offset : ms - offset;  // local time minus its offset is UTC
}

/// A time bound of the audit export, in unix milliseconds: "YYYY-MM-DD" (that UTC day's start,
/// or with `end_of_day` the next day's start), RFC 3339 ("2026-12-04T10:00:00Z", fraction and
/// offset allowed) or unix milliseconds. nullopt when malformed, before 1970 or after 9999.
std::optional<int64_t> parse_time_bound(std::string_view v, bool end_of_day) {
  int64_t ms = 0;
  int64_t day = 0;
  if (v.size() == 10 && billing::parse_day(v, day)) {
    ms = (day + (end_of_day ? 1 : 0)) * ms_per_day;
  } else if (v.size() > 10 && billing::parse_day(v.substr(0, 10), day)) {
    const std::optional<int64_t> in_day = parse_rfc3339_time(v.substr(10));
    if (!in_day) return std::nullopt;
    ms = day * ms_per_day + *in_day;
  } else {
    uint64_t n = 0;
    if (!parse_digits(v, 15, n)) return std::nullopt;
    ms = static_cast<int64_t>(n);
  }
  if (ms < 0 || ms > max_time_ms) return std::nullopt;
  return ms;
}

/// Reads the query's `limit` (absent: `fallback`); nullopt after setting `bad` when malformed.
std::optional<uint64_t> read_limit(const admin_call& c, uint64_t fallback, admin_answer& bad) {
  const std::string l = query(c, "limit");
  if (l.empty()) return fallback;
  uint64_t n = 0;
  if (parse_digits(l, 19, n)) return n;
  bad = bad_request("'limit' must be a whole number (0: no limit).", "limit");
  return std::nullopt;
}

/// Asks the audit writer for text: 200 with it as `content_type`, 503 if the writer fails or
/// does not answer in time.
template <class... Ts>
admin_answer ask_audit(const admin_api_deps& d, const char* content_type, Ts&&... xs) {
  caf::scoped_actor self{*d.system};
  admin_answer out;
  self->request(d.audit, actor_timeout, std::forward<Ts>(xs)...)
      .receive(
          [&](std::string& text) {
            out = json(200, std::move(text));
            out.content_type = content_type;
          },
          [&](const caf::error& e) {
            out = error(openai::service_unavailable(
                "The audit trail did not answer: " + self->system().render(e), 1));
          });
  return out;
}

constexpr const char* ndjson = "application/x-ndjson";

/// GET /v1/audit/verify, /v1/audit/export, /v1/audit/search (docs/api.md, "Audit trail").
admin_answer audit(const admin_api_deps& d, const admin_call& c,
                   const std::vector<std::string>& seg) {
  if (!d.audit)
    return error(openai::service_unavailable("The audit trail is not enabled on this node.", 0));
  if (seg.size() != 2) return not_found("No such admin path.");
  const std::string& what = seg[1];
  if (what != "verify" && what != "export" && what != "search")
    return not_found("No such admin path.");
  if (c.method != "GET") return method_not_allowed(c);
  if (what == "verify") return ask_audit(d, "application/json", actors::audit_verify_atom::value);
  admin_answer bad;
  const std::string tenant = query(c, "tenant");
  if (what == "search") {
    const std::string request_id = query(c, "request_id");
    if (request_id.empty()) return bad_request("'request_id' is required.", "request_id");
    const std::optional<uint64_t> limit = read_limit(c, 100, bad);
    if (!limit) return bad;
    return ask_audit(d, ndjson, actors::audit_search_atom::value, request_id, tenant, *limit);
  }
  int64_t from = 0;
  std::optional<int64_t> to;
  for (const bool is_to : {false, true}) {
    const char* name = is_to ? "to" : "from";
    const std::string v = query(c, name);
    if (v.empty()) continue;
    const std::optional<int64_t> ms = parse_time_bound(v, is_to);
    if (!ms)
      return bad_request(std::string("'") + name +
                             "' must be a day YYYY-MM-DD, an RFC 3339 time such as "
                             "2026-12-04T10:00:00Z, or unix milliseconds (1970 to 9999).",
                         name);
    if (is_to) {
      to = *ms;
    } else {
      from = *ms;
    }
  }
  if (to && from > *to) return bad_request("'from' is after 'to'.", "from");
  const std::optional<uint64_t> limit = read_limit(c, 0, bad);
  if (!limit) return bad;
  if (to && *to == from) {  // an empty range (to = 0 would mean "no end" to the writer)
    admin_answer empty = json(200, "");
    empty.content_type = ndjson;
    return empty;
  }
  return ask_audit(d, ndjson, actors::audit_export_atom::value, from, to.value_or(0), tenant,
                   *limit);
}

/// The role a call needs.
accounts::role needed(const admin_call& c, const std::vector<std::string>& seg) {
  const std::string& area = seg.empty() ? std::string() : seg[0];
  if (area == "admin-tokens" || area == "debug") return accounts::role::owner;
  if (c.method == "GET") return accounts::role::viewer;
  if (area == "prices") return accounts::role::owner;
  return accounts::role::operator_;
}

}  // namespace

admin_answer handle_admin(const admin_api_deps& d, const admin_call& c) {
  std::vector<std::string> seg = segments(c.path);
  if (seg.empty() || seg[0] != "v1") return not_found("No such admin path.");
  seg.erase(seg.begin());
  std::shared_ptr<const actors::directory> dir = d.directory->get();
  accounts::role granted = accounts::role::viewer;
  admin_answer refusal;
  if (!authorize(d, *dir, c, granted, refusal)) return refusal;
  const accounts::role need = needed(c, seg);
  if (static_cast<uint8_t>(granted) < static_cast<uint8_t>(need)) {
    return error(403, "permission_error", "permission_denied",
                 "This call needs the " + std::string(accounts::role_name(need)) +
                     " role; the token has " + std::string(accounts::role_name(granted)) + ".");
  }
  if (seg.empty()) return not_found("No such admin path.");
  const std::string& area = seg[0];
  if (area == "tenants") return tenants(d, *dir, c, seg);
  if (area == "keys") return keys(d, *dir, c, seg);
  if (area == "admin-tokens") return admin_tokens(d, *dir, c, seg);
  if (area == "prices") return prices(d, *dir, c, seg);
  if (area == "routing" && seg.size() >= 2 && seg[1] == "groups") return groups(d, *dir, c, seg);
  if (area == "usage") return usage(d, c, seg);
  if (area == "audit") return audit(d, c, seg);
  if (area == "cache") {
    if (!d.cache_stats) return error(openai::service_unavailable("The cache is not running.", 0));
    if (seg.size() == 1 && c.method == "GET") return json(200, d.cache_stats());
    if (seg.size() == 2 && seg[1] == "invalidate" && c.method == "POST") {
      auto [status, body] = d.cache_invalidate(c.body);
      return json(status, std::move(body));
    }
    return not_found("No such admin path.");
  }
  if (area == "debug" && seg.size() == 2 && seg[1] == "faults" && d.debug_faults) {
    if (c.method == "GET") return json(200, d.debug_faults("").second);
    if (c.method == "POST") {
      auto [status, body] = d.debug_faults(c.body);
      return json(status, std::move(body));
    }
  }
  return error(openai::unknown_endpoint(c.method, c.path));
}

}  // namespace tc::node
