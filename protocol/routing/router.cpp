// Candidate scoring and ordering (formula and rules in the header).
#include "protocol/routing/router.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace tc::routing {

namespace {

/// `x` if it is a finite number >= 0, else 0.
double non_negative(double x) {
  return std::isfinite(x) && x > 0 ? x : 0;
}

bool has(const std::vector<std::string>& set, const std::string& s) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

weights shaped(const weights& given, policy p) {
  weights w{non_negative(given.latency), non_negative(given.price), non_negative(given.load),
            non_negative(given.availability)};
  const double largest = std::max({w.latency, w.price, w.load, w.availability});
  if (largest == 0) {
    w = {1, 1, 1, 1};
  } else {  // to at most 1 each, so the sum below cannot overflow
    w = {w.latency / largest, w.price / largest, w.load / largest, w.availability / largest};
  }
  if (p == policy::cost_first) w.price *= 4;
  if (p == policy::performance_first) {
    w.latency *= 3;
    w.load *= 2;
  }
  const double sum = w.latency + w.price + w.load + w.availability;
  return {w.latency / sum, w.price / sum, w.load / sum, w.availability / sum};
}

bool available(const candidate& c) {
  return c.health.available && !(c.max_concurrency > 0 && c.in_flight >= c.max_concurrency);
}

/// The group a candidate is tried in: 0 available with a weight, 1 weight 0, 2 unavailable.
int group(const candidate& c) {
  if (!available(c)) return 2;
  return c.weight == 0 ? 1 : 0;
}

}  // namespace

bool parse_policy(std::string_view name, policy& out) {
  for (policy p : {policy::cost_first, policy::performance_first, policy::compliance_first}) {
    if (name == to_string(p)) {
      out = p;
      return true;
    }
  }
  return false;
}

std::string_view to_string(policy p) {
  switch (p) {
    case policy::cost_first:
      return "cost_first";
    case policy::performance_first:
      return "performance_first";
    case policy::compliance_first:
      return "compliance_first";
  }
  return "unknown";
}

bool resident(const candidate& c, const residency& r) {
  if (!r.regions.empty() && !has(r.regions, c.region)) return false;
  return std::all_of(r.required_tags.begin(), r.required_tags.end(),
                     [&](const std::string& t) { return has(c.tags, t); });
}

std::vector<double> scores(const std::vector<candidate>& c, policy p, const weights& given,
                           const residency& r, double expected_in_tokens,
                           double expected_out_tokens) {
  const size_t n = c.size();
  std::vector<double> out(n, -1);
  std::vector<bool> kept(n, true);
  if (p == policy::compliance_first) {
    for (size_t i = 0; i < n; ++i) kept[i] = resident(c[i], r);
  }

  double in = non_negative(expected_in_tokens);
  double out_tokens = non_negative(expected_out_tokens);
  if (in == 0 && out_tokens == 0) in = out_tokens = 1;

  // Each candidate's raw value per part, and the best of each over the kept candidates.
  std::vector<double> cost(n), latency(n), occupancy(n), health(n);
  double largest_limit = 0;
  uint32_t largest_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    if (kept[i]) largest_limit = std::max<double>(largest_limit, c[i].max_concurrency);
  }
  if (largest_limit == 0) largest_limit = 1;
  double cheapest = INFINITY, fastest = INFINITY, emptiest = INFINITY, healthiest = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!kept[i]) continue;
    const candidate& e = c[i];
    cost[i] =
        std::min(in * non_negative(e.price_in_per_m) + out_tokens * non_negative(e.price_out_per_m),
                 DBL_MAX);  // huge prices compare as equal, never as infinities
    const double measured = e.health.latency_ms;
    latency[i] = std::isfinite(measured) && measured >= 0 ? std::max(measured, 1.0) : -1;
    const double limit = e.max_concurrency > 0 ? e.max_concurrency : largest_limit;
    occupancy[i] = (static_cast<double>(e.in_flight) + 1) / limit;
    health[i] = std::min(non_negative(e.health.score), 1.0);
    cheapest = std::min(cheapest, cost[i]);
    if (latency[i] > 0) fastest = std::min(fastest, latency[i]);
    emptiest = std::min(emptiest, occupancy[i]);
    healthiest = std::max(healthiest, health[i]);
    largest_weight = std::max(largest_weight, e.weight);
  }

  const weights w = shaped(given, p);
  for (size_t i = 0; i < n; ++i) {
    if (!kept[i]) continue;
    const double price_part = cost[i] == 0 ? 1 : cheapest / cost[i];
    const double latency_part = latency[i] < 0 ? 1 : fastest / latency[i];
    const double load_part = emptiest / occupancy[i];
    const double health_part = healthiest == 0 ? 0 : health[i] / healthiest;
    const double mix = w.latency * latency_part + w.price * price_part + w.load * load_part +
                       w.availability * health_part;
    const double weight_part =
        largest_weight == 0 ? 1 : static_cast<double>(c[i].weight) / largest_weight;
    out[i] = std::clamp(mix * weight_part, 0.0, 1.0);
  }
  return out;
}

std::vector<size_t> rank(const std::vector<candidate>& c, policy p, const weights& w,
                         const residency& r, double expected_in_tokens,
                         double expected_out_tokens) {
  const std::vector<double> score = scores(c, p, w, r, expected_in_tokens, expected_out_tokens);
  std::vector<size_t> order;
  order.reserve(c.size());
  for (size_t i = 0; i < c.size(); ++i) {
    if (score[i] >= 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int ga = group(c[a]), gb = group(c[b]);
    if (ga != gb) return ga < gb;
    if (score[a] != score[b]) return score[a] > score[b];
    if (c[a].endpoint != c[b].endpoint) return c[a].endpoint < c[b].endpoint;
    return a < b;
  });
  return order;
}

}  // namespace tc::routing
