// protocol/openai/models.cpp: the /v1/models bodies.
#include <doctest/doctest.h>

#include "protocol/openai/models.hpp"

using namespace tc::openai;

TEST_CASE("models_list_body and model_body") {
  CHECK(models_list_body({}) == R"({"object":"list","data":[]})");
  const std::vector<model_card> cards = {{"gpt-4o", "openai", 1715367049},
                                         {"qwen\"max", "alibaba", 0}};
  CHECK(models_list_body(cards) ==
        R"({"object":"list","data":[{"id":"gpt-4o","object":"model","created":1715367049,)"
        R"("owned_by":"openai"},{"id":"qwen\"max","object":"model","created":0,)"
        R"("owned_by":"alibaba"}]})");
  CHECK(model_body(cards[0]) ==
        R"({"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"openai"})");
}
