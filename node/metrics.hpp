// The node's Prometheus registry (prometheus-cpp) and the metric families of the data plane.
// Families are created once at start-up; label values come only from config-declared sets
// (model, provider) and fixed sets (status class), so cardinality is bounded.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

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

  /// The per-(model, provider, status class) series of finished requests.
  struct request_series {
    prometheus::Counter* requests;
    prometheus::Histogram* latency;
  };
  /// The per-(model, provider) series of upstream calls.
  struct upstream_series {
    prometheus::Histogram* latency;
    prometheus::Histogram* ttft;
    prometheus::Histogram* overhead;
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
  prometheus::Family<prometheus::Counter>& upstream_failures_total;
  prometheus::Family<prometheus::Counter>& streams_cut_total;
  prometheus::Family<prometheus::Counter>& client_disconnects_total;
};

/// A per-loop cache of series handles so the request path does no label-map lookups under the
/// families' mutex. Used by one I/O loop thread only.
class metrics_cache {
 public:
  explicit metrics_cache(metrics& m) : m_(m) {}
  metrics::request_series& request(const std::string& model, const std::string& provider,
                                   int status);
  metrics::upstream_series& upstream(const std::string& model, const std::string& provider);
  prometheus::Gauge& upstream_in_flight(const std::string& provider);
  metrics& families() { return m_; }

 private:
  metrics& m_;
  std::unordered_map<std::string, metrics::request_series> requests_;
  std::unordered_map<std::string, metrics::upstream_series> upstreams_;
  std::unordered_map<std::string, prometheus::Gauge*> in_flight_;
};

/// "2xx", "4xx", "5xx" ...
std::string_view status_class(int status);

}  // namespace tc::node
