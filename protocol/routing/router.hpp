// Ranking the upstream endpoints that can serve one request (issue 6, pipeline step 9): a score
// of latency, price, load and health per candidate, shaped by the routing policy, best first,
// then the failover order. Pure; any thread; keeps no state (O(candidates) memory per call).
//
// Each part is normalized over the candidates ranked, so the best candidate on it scores 1:
//   price        = cheapest expected cost / own expected cost (cost = expected_in_tokens *
//                  price_in_per_m + expected_out_tokens * price_out_per_m; free = 1);
//   latency      = lowest health.latency_ms / own (1 while unmeasured, floored at 1 ms);
//   load         = lowest occupancy / own, occupancy = (in_flight + 1) / max_concurrency, an
//                  unlimited endpoint counting as the largest max_concurrency declared (1 if none);
//   availability = health.score / the best health.score (0 when every score is 0).
// score = (sum of weight * part) / (sum of weights) * weight / the largest static weight, in
// [0,1]. Policies shape the weights given: cost_first multiplies price by 4, performance_first
// latency by 3 and load by 2, compliance_first keeps them. Negative or non-finite inputs count as
// 0 (tokens as none; both none prices the sum of the two prices).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/routing/health.hpp"

namespace tc::routing {

/// How a request's candidates are ordered.
enum class policy : uint8_t { cost_first, performance_first, compliance_first };

/// "cost_first" | "performance_first" | "compliance_first" -> policy; false otherwise.
bool parse_policy(std::string_view name, policy& out);
std::string_view to_string(policy p);

/// The weight of each part of the score (any scale; all 0 counts as all equal).
struct weights {
  double latency = 0.3;
  double price = 0.3;
  double load = 0.2;
  double availability = 0.2;
};

/// One endpoint that could serve the request.
struct candidate {
  std::string endpoint;  ///< "provider/model" id, unique
  std::string region;
  std::vector<std::string> tags;
  double price_in_per_m = 0;  ///< same currency for every candidate (the caller converts)
  double price_out_per_m = 0;
  uint32_t in_flight = 0;
  uint32_t max_concurrency = 0;  ///< 0 = unlimited
  health_snapshot health;
  uint32_t weight = 100;  ///< static weight; 0 = only as a last resort
};

/// Where a request may go under compliance_first: a candidate must be in one of `regions` (any,
/// when empty) and carry every one of `required_tags`.
struct residency {
  std::vector<std::string> regions;
  std::vector<std::string> required_tags;
};

/// True if `c` satisfies `r`.
bool resident(const candidate& c, const residency& r);

/// The indexes of `c` in the order to try: first the available candidates with a static weight,
/// then the available ones of weight 0, then the unavailable ones (breaker open, in Retry-After,
/// at max_concurrency: !health.available or in_flight >= max_concurrency > 0), so a request still
/// has somewhere to go when everything is degraded. Within each group by score, best first; equal
/// scores by endpoint id, then index. Under compliance_first, candidates that are not resident
/// are left out (never tried); the other policies ignore `r`.
std::vector<size_t> rank(const std::vector<candidate>& c, policy p, const weights& w,
                         const residency& r, double expected_in_tokens, double expected_out_tokens);

/// The score (header formula) of every candidate, as rank() computes it; -1 for one that rank()
/// leaves out. For metrics and logs.
std::vector<double> scores(const std::vector<candidate>& c, policy p, const weights& w,
                           const residency& r, double expected_in_tokens,
                           double expected_out_tokens);

}  // namespace tc::routing
