// Serialization of the /v1/models answers.
#include "protocol/openai/models.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace tc::openai {

namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_string(writer& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void write_card(writer& w, const model_card& m) {
  w.StartObject();
  w.Key("id");
  write_string(w, m.id);
  w.Key("object");
  w.String("model");
  w.Key("created");
  w.Int64(m.created);
  w.Key("owned_by");
  write_string(w, m.owned_by);
  w.EndObject();
}

}  // namespace

std::string models_list_body(const std::vector<model_card>& models) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  w.Key("object");
  w.String("list");
  w.Key("data");
  w.StartArray();
  for (const auto& m : models) write_card(w, m);
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::string model_body(const model_card& model) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  write_card(w, model);
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace tc::openai
