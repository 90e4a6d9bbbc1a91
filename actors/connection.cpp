#include "actors/connection.hpp"

#include <utility>

namespace tc::actors {

namespace {

/// Step 3: the model exists and serves this endpoint.
const model_route* validate(const pipeline& ctx, const openai::request& req,
                            openai::api_error& error) {
  auto it = ctx.models.find(req.model);
  if (it == ctx.models.end()) {
    error = openai::model_not_found(req.model);
    return nullptr;
  }
  const bool wants_embedding = req.kind == openai::endpoint::embeddings;
  if (it->second.embedding != wants_embedding) {
    error = openai::invalid_request("The model '" + req.model + "' does not support " +
                                        std::string(openai::path_of(req.kind)) + ".",
                                    "model");
    return nullptr;
  }
  return &it->second;
}

/// Step 9: the upstream call for the chosen route.
upstream_plan route(const model_route& r, openai::request& req, reply_target to) {
  upstream_plan plan;
  plan.to = to;
  plan.provider = r.provider;
  plan.model = req.model;
  plan.url = r.base_url + std::string(openai::path_of(req.kind)).substr(3);  // drop "/v1"
  plan.body = r.upstream_model == req.model ? std::move(req.body)
                                            : openai::with_model(req.body, r.upstream_model);
  plan.stream = req.stream;
  plan.connect_timeout_ms = r.connect_timeout_ms;
  plan.first_byte_timeout_ms = r.first_byte_timeout_ms;
  plan.total_timeout_ms = r.total_timeout_ms;
  return plan;
}

/// Steps 1-10 for one request.
void run(caf::stateful_actor<connection_state>* self) {
  auto& st = self->state;
  io_port& port = *st.ctx->ports.at(st.to.loop);

  // 1 auth          pass-through: the anonymous tenant (issue 4 adds keys)
  // 2 admission     pass-through: no quotas yet (issue 4: tenant_quota.reserve)
  // 3 validate      the model is known and serves this endpoint
  openai::api_error error;
  const model_route* r = validate(*st.ctx, st.req, error);
  if (r == nullptr) {
    port.reject(st.to, std::move(error));
    st.req = openai::request{};
    return;
  }
  // 4 moderate in   pass-through (issue 5: moderator.check)
  // 5 canonicalize  pass-through (issue 3: full_hash, prefix_hash)
  // 6 cache         pass-through: always a miss (issue 3: cache_shard.lookup)
  // 7 dedup         pass-through: always the leader (issue 3: dedup_table.join)
  // 8 schedule      pass-through: dispatched at once (issue 6: batcher.enqueue)
  // 9 route         the one provider that serves the model (issue 6: router scoring)
  upstream_plan plan = route(*r, st.req, st.to);
  // 10 upstream, 11 moderate out (pass-through, issue 5), 12 reply: the I/O loop relays the
  //    upstream answer to the client and reports how it ended with a request_outcome.
  port.dispatch(std::move(plan));
}

}  // namespace

caf::behavior connection(caf::stateful_actor<connection_state>* self,
                         std::shared_ptr<const pipeline> ctx) {
  self->state.ctx = std::move(ctx);
  return {
      [self](openai::request& req, reply_target to) {
        self->state.req = std::move(req);
        self->state.to = to;
        run(self);
      },
      [self](const request_outcome&) {
        // 13 settle      pass-through: quota settle, ledger, audit, cache store and dedup
        //                completion arrive with issues 3-5. Metrics are recorded by the I/O loop.
        self->state.req = openai::request{};
      },
  };
}

}  // namespace tc::actors
