// The node's Prometheus registry (prometheus-cpp) and the metric families of the data plane.
// Families are created once at start-up; label values come only from config-declared sets
// (model, provider) and fixed sets (status class), so cardinality is bounded.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace tc::node {

/// Metric families shared by all I/O loops. Thread-safe (prometheus-cpp metrics are).
class metrics {
  std::shared_ptr<prometheus::Registry> registry_;  // first: the families below live in it

 public:
  metrics();

  /// Text exposition of everything registered (GET /metrics on the admin port).
  std::string serialize() const;

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  /// The series of one (model, provider) route, created on first use.
  struct route_series {
    std::string model_label;
    std::string provider_label;
    prometheus::Histogram* upstream_latency;
    prometheus::Histogram* upstream_ttft;
    prometheus::Histogram* overhead;
    prometheus::Gauge* upstream_in_flight;
    /// Finished requests by status class (index status / 100, 0 for out of range).
    prometheus::Counter* requests[6] = {};
    prometheus::Histogram* latency[6] = {};
  };

  prometheus::Family<prometheus::Counter>& requests_total;
  prometheus::Family<prometheus::Histogram>& request_seconds;
  prometheus::Family<prometheus::Histogram>& upstream_seconds;
  prometheus::Family<prometheus::Histogram>& upstream_ttft_seconds;
  prometheus::Family<prometheus::Histogram>& overhead_seconds;
  prometheus::Family<prometheus::Gauge>& upstream_in_flight;
  prometheus::Family<prometheus::Gauge>& requests_in_flight;
  prometheus::Family<prometheus::Gauge>& connections_open;
  prometheus::Family<prometheus::Counter>& protocol_errors_total;
  prometheus::Family<prometheus::Counter>& connections_refused_total;
  prometheus::Family<prometheus::Counter>& upstream_failures_total;
  prometheus::Family<prometheus::Counter>& streams_cut_total;
  prometheus::Family<prometheus::Counter>& client_disconnects_total;
};

/// A per-loop cache of series handles, so the request path does no label-map lookups under
/// the families' mutex and builds no label strings. Used by one I/O loop thread only.
class metrics_cache {
 public:
  explicit metrics_cache(metrics& m) : m_(m) {}
  /// The series of a (model, provider) route; an empty name is labelled "none".
  metrics::route_series& route(std::string_view model, std::string_view provider);
  /// Counts one finished request of the route with its status and latency.
  void finished(metrics::route_series& r, int status, double seconds);
  metrics& families() { return m_; }

 private:
  metrics& m_;
  std::map<std::string, std::map<std::string, metrics::route_series, std::less<>>, std::less<>>
      routes_;
};

/// "2xx", "4xx", "5xx" ...
std::string_view status_class(int status);

}  // namespace tc::node
