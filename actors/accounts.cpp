#include "actors/accounts.hpp"

#include <openssl/crypto.h>

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <utility>

#include "protocol/accounts/json.hpp"

namespace tc::actors {

// -- directory -------------------------------------------------------------------------------

const accounts::tenant* directory::tenant(const std::string& id) const {
  auto it = tenants.find(id);
  return it == tenants.end() ? nullptr : &it->second;
}

const accounts::project* directory::project(const std::string& t, const std::string& id) const {
  auto it = projects.find(t + "/" + id);
  return it == projects.end() ? nullptr : &it->second;
}

const accounts::api_key* directory::key(const std::string& id) const {
  auto it = keys.find(id);
  return it == keys.end() ? nullptr : &it->second;
}

const accounts::api_key* directory::key_by_secret_hash(const std::string& hash) const {
  auto it = key_by_hash.find(hash);
  return it == key_by_hash.end() ? nullptr : key(it->second);
}

const accounts::admin_token* directory::admin_by_secret_hash(const std::string& hash) const {
  auto it = admin_by_hash.find(hash);
  if (it == admin_by_hash.end()) return nullptr;
  auto t = admin_tokens.find(it->second);
  return t == admin_tokens.end() ? nullptr : &t->second;
}

bool os_random(uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    got += static_cast<size_t>(r);
  }
  return true;
}

namespace {

using self_ptr = caf::stateful_actor<accounts_state>*;
using family = store::family;

// Row keys. Family tenants: t/<tenant>, p/<tenant>/<project>, a/<admin token id>,
// $/<provider>/<model> (provider names have no '/'). Family keys: k/<key id>.
std::string tenant_row(const std::string& id) {
  return "t/" + id;
}
std::string project_row(const std::string& t, const std::string& id) {
  return "p/" + t + "/" + id;
}
std::string admin_row(const std::string& id) {
  return "a/" + id;
}
std::string price_row(const std::string& p, const std::string& m) {
  return "$/" + p + "/" + m;
}
std::string key_row(const std::string& id) {
  return "k/" + id;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void index_key(directory& d, const accounts::api_key& k) {
  d.keys[k.id] = k;
  d.key_by_hash[k.hash] = k.id;
}

void index_admin(directory& d, const accounts::admin_token& a) {
  d.admin_tokens[a.id] = a;
  d.admin_by_hash[a.hash] = a.id;
}

accounts_result fail(int status, std::string message, std::string param = {}) {
  accounts_result r;
  r.status = status;
  r.message = std::move(message);
  r.param = std::move(param);
  return r;
}

accounts_result ok(int status, std::string json) {
  accounts_result r;
  r.status = status;
  r.json = std::move(json);
  return r;
}

/// A new id: `prefix` + 16 hex digits from the CSPRNG.
bool new_id(std::string_view prefix, std::string& out) {
  uint8_t b[8];
  if (!os_random(b, sizeof b)) return false;
  static constexpr char hex[] = "0123456789abcdef";
  out.assign(prefix);
  for (uint8_t c : b) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return true;
}

/// A new secret with its stored prefix and hash.
bool new_secret(std::string_view scheme, std::string& secret, std::string& prefix,
                std::string& hash) {
  uint8_t b[32];
  if (!os_random(b, sizeof b)) return false;
  secret = accounts::make_secret(scheme, b);
  prefix = accounts::secret_prefix(secret);
  hash = accounts::secret_hash(secret);
  return true;
}

/// Writes `b` (if there is a store) and, on success, publishes `next`.
accounts_result commit(self_ptr self, store::batch& b, std::shared_ptr<directory> next,
                       accounts_result success) {
  auto& st = self->state;
  if (st.db) {
    store::status s = st.db->write(b);
    if (!s.ok()) return fail(503, "The account store failed: " + s.message);
  }
  next->version = st.cell->get()->version + 1;
  st.cell->set(std::move(next));
  return success;
}

std::shared_ptr<directory> copy_current(self_ptr self) {
  return std::make_shared<directory>(*self->state.cell->get());
}

accounts_result put_tenant(self_ptr self, accounts::tenant t, bool create) {
  auto next = copy_current(self);
  const accounts::tenant* old = next->tenant(t.id);
  if (create && old != nullptr) return fail(409, "Tenant '" + t.id + "' already exists.", "id");
  if (!create && old == nullptr) return fail(404, "No tenant '" + t.id + "'.");
  t.created_at = create ? unix_now() : old->created_at;
  store::batch b;
  b.put(family::tenants, tenant_row(t.id), accounts::encode(t));
  next->tenants[t.id] = t;
  return commit(self, b, std::move(next), ok(create ? 201 : 200, accounts::to_json(t)));
}

accounts_result delete_tenant(self_ptr self, const std::string& id) {
  auto next = copy_current(self);
  auto it = next->tenants.find(id);
  if (it == next->tenants.end()) return fail(404, "No tenant '" + id + "'.");
  for (const auto& [_, p] : next->projects)
    if (p.tenant == id) return fail(409, "Tenant '" + id + "' still has projects.");
  for (const auto& [_, k] : next->keys)
    if (k.tenant == id) return fail(409, "Tenant '" + id + "' still has keys.");
  store::batch b;
  b.del(family::tenants, tenant_row(id));
  next->tenants.erase(it);
  return commit(self, b, std::move(next),
                ok(200, R"({"id":")" + id + R"(","object":"tenant","deleted":true})"));
}

accounts_result put_project(self_ptr self, accounts::project p, bool create) {
  auto next = copy_current(self);
  if (next->tenant(p.tenant) == nullptr) return fail(404, "No tenant '" + p.tenant + "'.");
  const accounts::project* old = next->project(p.tenant, p.id);
  if (create && old != nullptr)
    return fail(409, "Project '" + p.id + "' already exists in tenant '" + p.tenant + "'.", "id");
  if (!create && old == nullptr) return fail(404, "No project '" + p.tenant + "/" + p.id + "'.");
  p.created_at = create ? unix_now() : old->created_at;
  store::batch b;
  b.put(family::tenants, project_row(p.tenant, p.id), accounts::encode(p));
  next->projects[p.tenant + "/" + p.id] = p;
  return commit(self, b, std::move(next), ok(create ? 201 : 200, accounts::to_json(p)));
}

accounts_result delete_project(self_ptr self, const std::string& t, const std::string& id) {
  auto next = copy_current(self);
  auto it = next->projects.find(t + "/" + id);
  if (it == next->projects.end()) return fail(404, "No project '" + t + "/" + id + "'.");
  for (const auto& [_, k] : next->keys)
    if (k.tenant == t && k.project == id)
      return fail(409, "Project '" + t + "/" + id + "' still has keys.");
  store::batch b;
  b.del(family::tenants, project_row(t, id));
  next->projects.erase(it);
  return commit(self, b, std::move(next),
                ok(200, R"({"id":")" + id + R"(","object":"project","deleted":true})"));
}

/// The key's tenant and project exist.
std::optional<accounts_result> check_owner(const directory& d, const accounts::api_key& k) {
  if (d.tenant(k.tenant) == nullptr) return fail(404, "No tenant '" + k.tenant + "'.", "tenant");
  if (!k.project.empty() && d.project(k.tenant, k.project) == nullptr)
    return fail(404, "No project '" + k.tenant + "/" + k.project + "'.", "project");
  return std::nullopt;
}

accounts_result create_key(self_ptr self, accounts::api_key k) {
  auto next = copy_current(self);
  if (auto bad = check_owner(*next, k)) return *bad;
  std::string secret;
  if (!new_id("key_", k.id) || !new_secret(accounts::key_scheme, secret, k.prefix, k.hash))
    return fail(503, "The OS random source failed.");
  k.created_at = unix_now();
  k.revoked_at = 0;
  k.replaced_by.clear();
  k.grace_until = 0;
  store::batch b;
  b.put(family::keys, key_row(k.id), accounts::encode(k));
  index_key(*next, k);
  accounts_result r = ok(201, accounts::to_json(k));
  r.secret = std::move(secret);
  return commit(self, b, std::move(next), std::move(r));
}

accounts_result update_key(self_ptr self, accounts::api_key k) {
  auto next = copy_current(self);
  const accounts::api_key* old = next->key(k.id);
  if (old == nullptr) return fail(404, "No key '" + k.id + "'.");
  if (auto bad = check_owner(*next, k)) return *bad;
  // What the admin cannot change: identity, secret and life-cycle stamps.
  k.prefix = old->prefix;
  k.hash = old->hash;
  k.created_at = old->created_at;
  k.revoked_at = old->revoked_at;
  k.replaced_by = old->replaced_by;
  k.grace_until = old->grace_until;
  store::batch b;
  b.put(family::keys, key_row(k.id), accounts::encode(k));
  index_key(*next, k);
  return commit(self, b, std::move(next), ok(200, accounts::to_json(k)));
}

accounts_result revoke_key(self_ptr self, const std::string& id) {
  auto next = copy_current(self);
  const accounts::api_key* old = next->key(id);
  if (old == nullptr) return fail(404, "No key '" + id + "'.");
  accounts::api_key k = *old;
  if (k.revoked_at == 0) k.revoked_at = unix_now();
  store::batch b;
  b.put(family::keys, key_row(k.id), accounts::encode(k));
  index_key(*next, k);
  return commit(self, b, std::move(next), ok(200, accounts::to_json(k)));
}

accounts_result rotate_key(self_ptr self, const std::string& id, int64_t grace_s) {
  auto next = copy_current(self);
  const accounts::api_key* old_ptr = next->key(id);
  if (old_ptr == nullptr) return fail(404, "No key '" + id + "'.");
  accounts::api_key old = *old_ptr;
  const int64_t now = unix_now();
  if (accounts::key_status(old, now) != "active")
    return fail(409, "Key '" + id + "' is not active; only an active key can be rotated.");
  accounts::api_key fresh = old;
  std::string secret;
  if (!new_id("key_", fresh.id) ||
      !new_secret(accounts::key_scheme, secret, fresh.prefix, fresh.hash))
    return fail(503, "The OS random source failed.");
  fresh.created_at = now;
  old.replaced_by = fresh.id;
  old.grace_until = now + grace_s;
  store::batch b;
  b.put(family::keys, key_row(old.id), accounts::encode(old));
  b.put(family::keys, key_row(fresh.id), accounts::encode(fresh));
  index_key(*next, old);
  index_key(*next, fresh);
  accounts_result r = ok(201, accounts::to_json(fresh));
  r.secret = std::move(secret);
  return commit(self, b, std::move(next), std::move(r));
}

accounts_result create_admin_token(self_ptr self, accounts::admin_token a) {
  auto next = copy_current(self);
  std::string secret;
  if (!new_id("adm_", a.id) || !new_secret(accounts::admin_scheme, secret, a.prefix, a.hash))
    return fail(503, "The OS random source failed.");
  a.created_at = unix_now();
  a.revoked_at = 0;
  store::batch b;
  b.put(family::tenants, admin_row(a.id), accounts::encode(a));
  index_admin(*next, a);
  accounts_result r = ok(201, accounts::to_json(a));
  r.secret = std::move(secret);
  return commit(self, b, std::move(next), std::move(r));
}

accounts_result revoke_admin_token(self_ptr self, const std::string& id) {
  auto next = copy_current(self);
  auto it = next->admin_tokens.find(id);
  if (it == next->admin_tokens.end()) return fail(404, "No admin token '" + id + "'.");
  accounts::admin_token a = it->second;
  if (a.revoked_at == 0) a.revoked_at = unix_now();
  store::batch b;
  b.put(family::tenants, admin_row(a.id), accounts::encode(a));
  index_admin(*next, a);
  return commit(self, b, std::move(next), ok(200, accounts::to_json(a)));
}

accounts_result put_price(self_ptr self, const accounts::price& p) {
  auto next = copy_current(self);
  store::batch b;
  b.put(family::tenants, price_row(p.provider, p.model), accounts::encode(p));
  next->prices[p.provider + "/" + p.model] = p;
  return commit(self, b, std::move(next), ok(200, accounts::to_json(p)));
}

accounts_result delete_price(self_ptr self, const accounts::price& p) {
  auto next = copy_current(self);
  auto it = next->prices.find(p.provider + "/" + p.model);
  if (it == next->prices.end())
    return fail(404, "No stored price for '" + p.provider + "/" + p.model + "'.");
  store::batch b;
  b.del(family::tenants, price_row(p.provider, p.model));
  next->prices.erase(it);
  return commit(self, b, std::move(next), ok(200, accounts::to_json(p)));
}

accounts_result put_split(self_ptr self, accounts::model_split sp) {
  auto next = copy_current(self);
  sp.updated_at = unix_now();
  store::batch b;
  b.put(family::tenants, "s/" + sp.group, accounts::encode(sp));
  next->splits[sp.group] = sp;
  return commit(self, b, std::move(next), ok(200, accounts::to_json(sp)));
}

accounts_result delete_split(self_ptr self, const std::string& group) {
  auto next = copy_current(self);
  auto it = next->splits.find(group);
  if (it == next->splits.end()) return fail(404, "No stored weights for group '" + group + "'.");
  accounts::model_split gone = it->second;
  store::batch b;
  b.del(family::tenants, "s/" + group);
  next->splits.erase(it);
  return commit(self, b, std::move(next), ok(200, accounts::to_json(gone)));
}

accounts_result apply(self_ptr self, accounts_op& op) {
  switch (op.op) {
    case accounts_op::create_tenant:
      return put_tenant(self, std::move(op.tenant), true);
    case accounts_op::update_tenant:
      return put_tenant(self, std::move(op.tenant), false);
    case accounts_op::delete_tenant:
      return delete_tenant(self, op.id);
    case accounts_op::create_project:
      return put_project(self, std::move(op.project), true);
    case accounts_op::update_project:
      return put_project(self, std::move(op.project), false);
    case accounts_op::delete_project:
      return delete_project(self, op.project.tenant, op.id);
    case accounts_op::create_key:
      return create_key(self, std::move(op.key));
    case accounts_op::update_key:
      return update_key(self, std::move(op.key));
    case accounts_op::revoke_key:
      return revoke_key(self, op.id);
    case accounts_op::rotate_key:
      return rotate_key(self, op.id, op.grace_s);
    case accounts_op::create_admin_token:
      return create_admin_token(self, std::move(op.admin));
    case accounts_op::revoke_admin_token:
      return revoke_admin_token(self, op.id);
    case accounts_op::put_price:
      return put_price(self, op.price);
    case accounts_op::delete_price:
      return delete_price(self, op.price);
    case accounts_op::put_split:
      return put_split(self, std::move(op.split));
    case accounts_op::delete_split:
      return delete_split(self, op.id);
  }
  return fail(400, "Unknown accounts operation.");
}

}  // namespace

store::status load_directory(store& db, directory& out) {
  store::status bad;
  auto visit_tenants = [&](std::string_view key, std::string_view value) {
    bool ok = false;
    if (key.substr(0, 2) == "t/") {
      accounts::tenant t;
      if ((ok = accounts::decode(value, t))) out.tenants[t.id] = std::move(t);
    } else if (key.substr(0, 2) == "p/") {
      accounts::project p;
      if ((ok = accounts::decode(value, p))) out.projects[p.tenant + "/" + p.id] = std::move(p);
    } else if (key.substr(0, 2) == "a/") {
      accounts::admin_token a;
      if ((ok = accounts::decode(value, a))) index_admin(out, a);
    } else if (key.substr(0, 2) == "$/") {
      accounts::price p;
      if ((ok = accounts::decode(value, p))) out.prices[p.provider + "/" + p.model] = std::move(p);
    } else if (key.substr(0, 2) == "s/") {
      accounts::model_split sp;
      if ((ok = accounts::decode(value, sp))) out.splits[sp.group] = std::move(sp);
    }
    if (!ok) {
      bad.value = store::status::code::corruption;
      bad.message = "unreadable account row '" + std::string(key) + "'";
    }
    return ok;
  };
  store::status s = db.scan(family::tenants, "", visit_tenants);
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  s = db.scan(family::keys, "k/", [&](std::string_view key, std::string_view value) {
    accounts::api_key k;
    if (!accounts::decode(value, k)) {
      bad.value = store::status::code::corruption;
      bad.message = "unreadable key row '" + std::string(key) + "'";
      return false;
    }
    index_key(out, k);
    return true;
  });
  if (!s.ok()) return s;
  return bad;
}

caf::behavior accounts_actor(caf::stateful_actor<accounts_state>* self, std::shared_ptr<store> db,
                             std::shared_ptr<directory_cell> cell) {
  self->state.db = std::move(db);
  self->state.cell = std::move(cell);
  // CAF 0.17 does not join a detached actor's thread: the process may end before that thread's
  // destructors free OpenSSL's per-thread state (LeakSanitizer saw it once), so free it here,
  // on the actor's own thread, as it terminates.
  self->attach_functor([] { OPENSSL_thread_stop(); });
  return {
      [self](accounts_op& op) -> accounts_result { return apply(self, op); },
  };
}

}  // namespace tc::actors
