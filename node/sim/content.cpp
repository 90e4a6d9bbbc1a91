// Deterministic content for the simulated provider. See content.hpp.
#include "node/sim/content.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace tc::sim {
namespace {

// Plain English words; every one is a single token of the simulated text.
constexpr std::string_view words[] = {
    "the",      "a",       "of",        "and",       "to",       "in",      "is",      "it",
    "that",     "for",     "on",        "with",      "as",       "was",     "at",      "by",
    "this",     "from",    "or",        "an",        "but",      "not",     "are",     "we",
    "can",      "all",     "there",     "one",       "more",     "when",    "will",    "so",
    "each",     "which",   "about",     "out",       "many",     "then",    "them",    "these",
    "some",     "would",   "other",     "into",      "has",      "two",     "like",    "time",
    "see",      "way",     "could",     "people",    "than",     "first",   "water",   "been",
    "long",     "little",  "very",      "after",     "words",    "called",  "just",    "where",
    "most",     "know",    "through",   "back",      "much",     "before",  "good",    "new",
    "write",    "our",     "used",      "me",        "man",      "too",     "any",     "day",
    "same",     "right",   "look",      "think",     "also",     "around",  "another", "came",
    "come",     "work",    "three",     "word",      "must",     "because", "does",    "part",
    "even",     "place",   "well",      "such",      "here",     "take",    "why",     "things",
    "help",     "put",     "years",     "different", "away",     "again",   "off",     "went",
    "old",      "number",  "great",     "tell",      "men",      "say",     "small",   "every",
    "found",    "still",   "between",   "name",      "should",   "home",    "big",     "give",
    "air",      "line",    "set",       "own",       "under",    "read",    "last",    "never",
    "us",       "left",    "end",       "along",     "while",    "might",   "next",    "sound",
    "below",    "saw",     "something", "thought",   "both",     "few",     "those",   "always",
    "looked",   "show",    "large",     "often",     "together", "asked",   "house",   "world",
    "going",    "want",    "school",    "important", "until",    "form",    "food",    "keep",
    "children", "feet",    "land",      "side",      "without",  "boy",     "once",    "animals",
    "life",     "enough",  "took",      "sometimes", "four",     "head",    "above",   "kind",
    "began",    "almost",  "live",      "page",      "got",      "earth",   "need",    "far",
    "hand",     "high",    "year",      "mother",    "light",    "parts",   "country", "father",
    "let",      "night",   "following", "picture",   "being",    "study",   "second",  "eyes",
    "soon",     "times",   "story",     "boys",      "since",    "white",   "days",    "ever",
    "paper",    "hard",    "near",      "sentence",  "better",   "best",    "across",  "during",
    "today",    "others",  "however",   "sure",      "means",    "knew",    "try",     "told",
    "young",    "miles",   "sun",       "ways",      "thing",    "whole",   "hear",    "example",
    "heard",    "several", "change",    "answer",    "room",     "sea",     "against", "top",
    "turned",   "learn",   "point",     "city",      "play",     "toward",  "five",    "using",
    "himself",  "usually", "river",     "music",     "open",     "garden",  "clear",   "simple",
    "model",    "signal",  "engine",    "bridge",    "market",   "window",  "morning", "evening",
    "question", "reason",  "system",    "letter",    "number",   "forest",  "stone",   "field",
    "travel",   "careful", "quiet",     "bright",    "gentle",   "steady",  "warm",    "cold",
    "early",    "late",    "quick",     "slow",      "pattern",  "measure", "balance", "detail",
    "method",   "result",  "center",    "edge",      "path",     "record",  "history", "future",
    "energy",   "motion",  "voice",     "table",     "chair",    "book",    "island",  "valley",
    "mountain", "cloud",   "rain",      "wind",      "winter",   "summer",  "spring",
};
constexpr uint32_t word_count = sizeof(words) / sizeof(words[0]);

constexpr uint64_t k_word = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t k_stop = 0xc2b2ae3d27d4eb4fULL;

bool sentence_ends_after(uint64_t seed, uint32_t k) {
  return mix64(seed ^ (k_stop * (k + 1))) % 9 == 0;
}

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

void write_value(rapidjson::Writer<rapidjson::StringBuffer>& w, const rapidjson::Value& schema,
                 uint64_t seed, int depth);

std::string_view schema_type(const rapidjson::Value& schema) {
  if (!schema.IsObject()) return {};
  auto t = schema.FindMember("type");
  if (t == schema.MemberEnd()) return {};
  if (t->value.IsString()) return {t->value.GetString(), t->value.GetStringLength()};
  if (t->value.IsArray()) {  // ["string", "null"]: the first non-null type
    for (const auto& v : t->value.GetArray()) {
      if (v.IsString() && std::string_view(v.GetString(), v.GetStringLength()) != "null")
        return {v.GetString(), v.GetStringLength()};
    }
  }
  return {};
}

void write_object(rapidjson::Writer<rapidjson::StringBuffer>& w, const rapidjson::Value* schema,
                  uint64_t seed, int depth) {
  w.StartObject();
  if (schema && schema->IsObject() && depth < 8) {
    auto props = schema->FindMember("properties");
    if (props != schema->MemberEnd() && props->value.IsObject()) {
      uint64_t i = 0;
      for (const auto& p : props->value.GetObject()) {
        w.Key(p.name.GetString(), p.name.GetStringLength());
        write_value(w, p.value, mix64(seed + ++i), depth + 1);
      }
    }
  }
  w.EndObject();
}

void write_value(rapidjson::Writer<rapidjson::StringBuffer>& w, const rapidjson::Value& schema,
                 uint64_t seed, int depth) {
  if (schema.IsObject()) {
    auto e = schema.FindMember("enum");
    if (e != schema.MemberEnd() && e->value.IsArray() && !e->value.Empty()) {
      e->value[0].Accept(w);
      return;
    }
  }
  std::string_view t = schema_type(schema);
  if (t == "number") {
    w.Double(static_cast<double>(seed % 10000) / 100.0);
  } else if (t == "integer") {
    w.Uint64(seed % 100);
  } else if (t == "boolean") {
    w.Bool(true);
  } else if (t == "array") {
    w.StartArray();
    w.EndArray();
  } else if (t == "object") {
    write_object(w, &schema, seed, depth);
  } else if (t == "null") {
    w.Null();
  } else {  // string, or no type given
    std::string_view word = words[seed % word_count];
    w.String(word.data(), static_cast<rapidjson::SizeType>(word.size()));
  }
}

}  // namespace

uint64_t fnv1a64(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of bytes that need no escape
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_hex64(std::string& out, uint64_t v) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(hex[(v >> shift) & 15]);
}

void append_float(std::string& out, float f) {
  if (!std::isfinite(f)) f = 0;
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  out.append(buf, r.ptr);
}

void append_token(std::string& out, uint64_t seed, uint32_t k, uint32_t length, bool final_stop) {
  std::string_view w = words[mix64(seed ^ (k_word * (k + 1))) % word_count];
  if (k > 0) out.push_back(' ');
  bool capital = k == 0 || sentence_ends_after(seed, k - 1);
  out.push_back(capital ? static_cast<char>(w[0] - 'a' + 'A') : w[0]);
  out.append(w.substr(1));
  bool last = k + 1 == length;
  if ((last && final_stop) || (!last && sentence_ends_after(seed, k))) out.push_back('.');
}

uint32_t text_length(uint64_t seed, uint32_t default_max_tokens) {
  uint32_t hi = default_max_tokens < 1 ? 1 : default_max_tokens;
  uint32_t lo = hi / 2 < 1 ? 1 : hi / 2;
  return lo + static_cast<uint32_t>(mix64(seed ^ 0x5bd1e995ULL) % (hi - lo + 1));
}

std::string tool_arguments(const rapidjson::Value* parameters, uint64_t seed) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  write_object(w, parameters, seed, 0);
  return std::string(buf.GetString(), buf.GetSize());
}

std::vector<uint32_t> fragment_ends(std::string_view text) {
  std::vector<uint32_t> ends;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = pos + 4 < text.size() ? pos + 4 : text.size();
    while (end < text.size() && is_continuation(static_cast<unsigned char>(text[end]))) ++end;
    ends.push_back(static_cast<uint32_t>(end));
    pos = end;
  }
  if (ends.empty()) ends.push_back(0);
  return ends;
}

void embed_text(std::string_view text, uint64_t seed, uint32_t dim, std::vector<float>& out) {
  out.assign(dim, 0.0f);
  if (dim == 0) return;
  const uint64_t base = mix64(seed ^ 0x6a09e667f3bcc909ULL);
  auto add_feature = [&](uint64_t h, float weight) {
    for (uint64_t j = 0; j < 8; ++j) {
      uint64_t r = mix64(h ^ (base + j * k_word));
      out[r % dim] += (r >> 63) ? weight : -weight;
    }
  };
  // Features: lower-cased ASCII alphanumeric words, each non-ASCII character (CJK text has no
  // spaces), and pairs of consecutive features (word order).
  uint64_t prev = 0;
  bool have_prev = false;
  std::size_t i = 0;
  std::size_t features = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    uint64_t h = 0xcbf29ce484222325ULL;
    if (std::isalnum(c)) {
      while (i < text.size() && std::isalnum(static_cast<unsigned char>(text[i]))) {
        h ^= static_cast<unsigned char>(std::tolower(static_cast<unsigned char>(text[i++])));
        h *= 0x100000001b3ULL;
      }
    } else if (c >= 0x80) {
      std::size_t start = i++;
      while (i < text.size() && is_continuation(static_cast<unsigned char>(text[i]))) ++i;
      h = fnv1a64(text.substr(start, i - start));
    } else {
      ++i;
      continue;
    }
    add_feature(h, 1.0f);
    if (have_prev) add_feature(mix64(prev * 31 + h), 0.5f);
    prev = h;
    have_prev = true;
    ++features;
  }
  if (features == 0) {  // no words: a dense vector from the whole text
    uint64_t h = fnv1a64(text, base);
    for (uint32_t j = 0; j < dim; ++j)
      out[j] = static_cast<float>(unit_interval(mix64(h + j)) * 2.0 - 1.0);
  }
  double norm = 0;
  for (float v : out) norm += static_cast<double>(v) * v;
  if (norm <= 0) {
    out[0] = 1.0f;
    return;
  }
  const double inv = 1.0 / std::sqrt(norm);
  for (float& v : out) v = static_cast<float>(v * inv);
}

void append_base64(std::string& out, const void* data, std::size_t size) {
  static constexpr char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(tab[v >> 18]);
    out.push_back(tab[(v >> 12) & 63]);
    out.push_back(tab[(v >> 6) & 63]);
    out.push_back(tab[v & 63]);
  }
  if (size - i == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(tab[v >> 18]);
    out.push_back(tab[(v >> 12) & 63]);
    out.append("==");
  } else if (size - i == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out.push_back(tab[v >> 18]);
    out.push_back(tab[(v >> 12) & 63]);
    out.push_back(tab[(v >> 6) & 63]);
    out.push_back('=');
  }
}

bool base64_decode(std::string_view in, std::string& out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out.clear();
  if (in.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int pad = 0;
    uint32_t v = 0;
    for (int j = 0; j < 4; ++j) {
      char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      int d = val(c);
      if (d < 0 || pad) return false;
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<char>(v >> 16));
    if (pad < 2) out.push_back(static_cast<char>((v >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(v & 0xFF));
  }
  return true;
}

}  // namespace tc::sim
