// The model list bodies of GET /v1/models and GET /v1/models/{id}. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tc::openai {

/// One model as /v1/models lists it.
struct model_card {
  std::string id;        ///< the model name clients send
  std::string owned_by;  ///< provider or organisation
  int64_t created = 0;   ///< unix seconds

  template <class Inspector>
  friend auto inspect(Inspector& f, model_card& x) {
    return f(x.id, x.owned_by, x.created);
  }
};

/// {"object":"list","data":[{"id","object":"model","created","owned_by"}, ...]}.
std::string models_list_body(const std::vector<model_card>& models);

/// {"id","object":"model","created","owned_by"} for GET /v1/models/{id}.
std::string model_body(const model_card& model);

}  // namespace tc::openai
