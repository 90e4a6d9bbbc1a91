// Byte-level BPE token counting from a tokenizer.json: added tokens, normalization
// (protocol/text/unicode), the Split / ByteLevel pre-tokenizers (protocol/text/regex over UTF-8
// text), and BPE merges by rank (lowest rank first, then leftmost), the order HuggingFace
// tokenizers merges in.
#include "protocol/scheduling/vocab.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/text/regex.hpp"
#include "protocol/text/unicode.hpp"

namespace tc::scheduling {

namespace {

using json = rapidjson::Value;

/// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string_view str(const json& v) {
  return {v.GetString(), v.GetStringLength()};
}

const json* member(const json& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

bool is_null(const json* v) {
  return v == nullptr || v->IsNull();
}

/// The UTF-8 of the character GPT-2's byte-level alphabet maps byte `b` to.
std::string byte_char(unsigned b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  uint32_t cp = b;
  if (!printable) {
    uint32_t n = 0;  // index of b among the non-printable bytes
    for (unsigned c = 0; c < b; ++c) {
      const bool p = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
      if (!p) ++n;
    }
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

/// `s` as a regex matching it literally: every ASCII character but letters and digits escaped.
std::string literal_pattern(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain =
        u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!plain) out += '\\';
    out += c;
  }
  return out;
}

/// Added tokens by first byte, longest first.
struct added_set {
  std::array<std::vector<std::string>, 256> by_first;
  size_t size = 0;

  void add(std::string token) {
    auto& list = by_first[static_cast<unsigned char>(token[0])];
    auto at = std::find_if(list.begin(), list.end(),
                           [&](const std::string& t) { return t.size() < token.size(); });
    list.insert(at, std::move(token));
    ++size;
  }
};

struct merge {
  uint32_t rank;
  uint32_t id;  ///< the merged symbol
};

/// (left id, right id) -> merge: open addressing with linear probing, at most 3/4 full.
class merge_table {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap * 3 < n * 4 + 4) cap *= 2;
    slots_.assign(cap, slot{});
    mask_ = cap - 1;
  }
  /// Ids must be below 0xFFFFFFFF (the empty key is all ones). A pair listed again takes its
  /// later merge.
  void insert_or_assign(uint32_t left, uint32_t right, merge m) {
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    const uint64_t key = uint64_t{left} << 32 | right;
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == key || slots_[i].key == empty) {
        if (slots_[i].key == empty) ++size_;
        slots_[i] = slot{key, m};
        return;
      }
    }
  }
  const merge* find(uint32_t left, uint32_t right) const {
    const uint64_t key = uint64_t{left} << 32 | right;
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i].m;
      if (slots_[i].key == empty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t empty = ~uint64_t{0};
  struct slot {
    uint64_t key = empty;
    merge m{};
  };
  std::vector<slot> slots_ = std::vector<slot>(16);
  size_t mask_ = 15;
  size_t size_ = 0;

  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  void grow() {
    std::vector<slot> old = std::move(slots_);
    reserve(old.size());  // doubles: capacity for old.size() entries at 3/4
    size_ = 0;
    for (const slot& s : old) {
      if (s.key != empty)
        insert_or_assign(static_cast<uint32_t>(s.key >> 32), static_cast<uint32_t>(s.key), s.m);
    }
  }
};

}  // namespace

struct vocab_counter::impl {
  struct split_step {
    text::regex re;
    bool keep_matches = true;
    bool keep_gaps = true;
  };
  std::vector<text::normal_form> normalizers;
  std::vector<split_step> splits;              ///< the Split pre-tokenizers, in order
  bool prefix_space = false;                   ///< ByteLevel add_prefix_space
  std::optional<split_step> byte_level_split;  ///< ByteLevel use_regex: GPT-2's pattern
  added_set raw_added;                         ///< added tokens matched on the raw text
  added_set normalized_added;                  ///< matched after normalization
  std::unordered_map<std::string, uint32_t> vocab;
  std::array<uint32_t, 256> byte_id{};
  std::array<std::string, 256> byte_chars;
  merge_table merges;
  bool ignore_merges = false;

  std::string load(const json& root);
  std::string load_normalizer(const json* n);
  std::string load_pre_tokenizer(const json* p, bool& byte_level_seen);
  std::string load_model(const json& m);
  std::string load_added(const json* added);
  std::string compile(std::string_view pattern, bool keep_matches, bool keep_gaps,
                      std::vector<split_step>& into);
  void split(const split_step& step, const std::vector<std::string_view>& pieces,
             std::vector<std::string_view>& out) const;

  uint32_t count_text(std::string_view text) const;
  uint32_t count_normalized(std::string_view text) const;
  uint32_t count_word(std::string_view word) const;
  uint32_t merge_short(const unsigned char* p, size_t n) const;  ///< n <= 64: linear scans
  uint32_t merge_long(const unsigned char* p, size_t n) const;   ///< a min-heap
  std::string normalize(std::string_view text) const;
};

namespace {

/// Splits `text` by the added tokens (leftmost, then longest): calls piece(text) for the text
/// between matches and adds 1 to `count` per match.
template <class Piece>
void split_added(std::string_view text, const added_set& tokens, uint32_t& count, Piece&& piece) {
  if (tokens.size == 0) {
    piece(text);
    return;
  }
  size_t from = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 0;
    for (const std::string& t : tokens.by_first[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, t.size(), t) == 0) {  // longest first: the first match is it
        len = t.size();
        break;
      }
    }
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > from) piece(text.substr(from, i - from));
    ++count;
    i += len;
    from = i;
  }
  if (from < text.size()) piece(text.substr(from));
}

}  // namespace

std::string vocab_counter::impl::compile(std::string_view pattern, bool keep_matches,
                                         bool keep_gaps, std::vector<split_step>& into) {
  std::string error;
  std::optional<text::regex> re = text::regex::compile(pattern, error);
  if (!re)
    return "pre_tokenizer: the pattern " + std::string(pattern) + " does not compile: " + error;
  into.push_back(split_step{std::move(*re), keep_matches, keep_gaps});
  return {};
}

std::string vocab_counter::impl::load_normalizer(const json* n) {
  if (is_null(n)) return {};
  const json* type = member(*n, "type");
  if (type == nullptr || !type->IsString()) return "normalizer: no type";
  const std::string_view t = str(*type);
  if (t == "Sequence") {
    const json* list = member(*n, "normalizers");
    if (list == nullptr || !list->IsArray()) return "normalizer: Sequence without normalizers";
    for (const json& each : list->GetArray()) {
      if (std::string e = load_normalizer(&each); !e.empty()) return e;
    }
    return {};
  }
  if (t == "NFC") {
    normalizers.push_back(text::normal_form::nfc);
  } else if (t == "NFD") {
    normalizers.push_back(text::normal_form::nfd);
  } else if (t == "NFKC") {
    normalizers.push_back(text::normal_form::nfkc);
  } else if (t == "NFKD") {
    normalizers.push_back(text::normal_form::nfkd);
  } else {
    return "normalizer: " + std::string(t) + " is not supported";
  }
  return {};
}

std::string vocab_counter::impl::load_pre_tokenizer(const json* p, bool& byte_level_seen) {
  if (is_null(p)) return {};
  const json* type = member(*p, "type");
  if (type == nullptr || !type->IsString()) return "pre_tokenizer: no type";
  const std::string_view t = str(*type);
  if (t == "Sequence") {
    const json* list = member(*p, "pretokenizers");
    if (list == nullptr || !list->IsArray()) return "pre_tokenizer: Sequence without pretokenizers";
    for (const json& each : list->GetArray()) {
      if (std::string e = load_pre_tokenizer(&each, byte_level_seen); !e.empty()) return e;
    }
    return {};
  }
  if (byte_level_seen) return "pre_tokenizer: " + std::string(t) + " after ByteLevel";
  if (t == "ByteLevel") {
    byte_level_seen = true;
    const json* prefix = member(*p, "add_prefix_space");
    prefix_space = prefix != nullptr && prefix->IsBool() && prefix->GetBool();
    const json* use_regex = member(*p, "use_regex");
    const bool regex = use_regex == nullptr || !use_regex->IsBool() || use_regex->GetBool();
    if (!regex) return {};
    std::vector<split_step> one;
    std::string e = compile(gpt2_pattern, true, true, one);
    if (e.empty()) byte_level_split = std::move(one.front());
    return e;
  }
  if (t == "Split") {
    const json* pattern = member(*p, "pattern");
    const json* regex = pattern != nullptr ? member(*pattern, "Regex") : nullptr;
    const json* literal = pattern != nullptr ? member(*pattern, "String") : nullptr;
    std::string text;
    if (regex != nullptr && regex->IsString()) {
      text = str(*regex);
    } else if (literal != nullptr && literal->IsString()) {
      text = literal_pattern(str(*literal));
    } else {
      return "pre_tokenizer: Split without a Regex or String pattern";
    }
    const json* behavior = member(*p, "behavior");
    const json* invert = member(*p, "invert");
    const bool inverted = invert != nullptr && invert->IsBool() && invert->GetBool();
    const std::string_view b = behavior != nullptr && behavior->IsString() ? str(*behavior) : "";
    if (b == "Isolated") return compile(text, true, true, splits);
    if (b == "Removed") return compile(text, inverted, !inverted, splits);
    return "pre_tokenizer: Split behavior " + std::string(b) + " is not supported";
  }
  return "pre_tokenizer: " + std::string(t) + " is not supported";
}

std::string vocab_counter::impl::load_model(const json& m) {
  const json* type = member(m, "type");
  if (type != nullptr && (!type->IsString() || str(*type) != "BPE")) {
    return "model: only BPE is supported";
  }
  if (const json* d = member(m, "dropout");
      !is_null(d) && !(d->IsNumber() && d->GetDouble() == 0)) {
    return "model: BPE dropout is not supported";
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = member(m, k);
    if (!is_null(v) && !(v->IsString() && v->GetStringLength() == 0)) {
      return std::string("model: ") + k + " is not supported";
    }
  }
  if (const json* f = member(m, "byte_fallback"); f != nullptr && f->IsBool() && f->GetBool()) {
    return "model: byte_fallback is not supported (not a byte-level BPE)";
  }
  if (const json* im = member(m, "ignore_merges"); im != nullptr && im->IsBool()) {
    ignore_merges = im->GetBool();
  }

  const json* v = member(m, "vocab");
  if (v == nullptr || !v->IsObject()) return "model: no vocab object";
  vocab.reserve(v->MemberCount());
  for (const auto& e : v->GetObject()) {
    if (!e.value.IsUint() || e.value.GetUint() == 0xFFFFFFFF) {
      return "model: vocab ids must be integers from 0 to 2^32 - 2";
    }
    vocab.emplace(std::string(str(e.name)), e.value.GetUint());
  }
  for (unsigned b = 0; b < 256; ++b) {
    byte_chars[b] = byte_char(b);
    auto it = vocab.find(byte_chars[b]);
    if (it == vocab.end()) {
      return "model: the vocab lacks the byte-level symbol of byte " + std::to_string(b) +
             " (not a byte-level BPE)";
    }
    byte_id[b] = it->second;
  }

  const json* ms = member(m, "merges");
  if (ms == nullptr || !ms->IsArray()) return "model: no merges array";
  merges.reserve(ms->Size());
  std::string merged;
  for (rapidjson::SizeType r = 0; r < ms->Size(); ++r) {
    const json& e = (*ms)[r];
    std::string_view left, right;
    if (e.IsString()) {
      const std::string_view s = str(e);
      const size_t space = s.find(' ');
      if (space == std::string_view::npos || s.find(' ', space + 1) != std::string_view::npos) {
        return "model: merge " + std::to_string(r) + " is not two symbols";
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (e.IsArray() && e.Size() == 2 && e[0].IsString() && e[1].IsString()) {
      left = str(e[0]);
      right = str(e[1]);
    } else {
      return "model: merge " + std::to_string(r) + " is not a string or a pair";
    }
    merged.assign(left);
    merged.append(right);
    auto l = vocab.find(std::string(left));
    auto rt = vocab.find(std::string(right));
    auto to = vocab.find(merged);
    if (l == vocab.end() || rt == vocab.end() || to == vocab.end()) {
      return "model: merge " + std::to_string(r) + " uses a symbol not in the vocab";
    }
    // A pair listed twice takes its last rank, as HuggingFace's map does.
    merges.insert_or_assign(l->second, rt->second, merge{r, to->second});
  }
  return {};
}

std::string vocab_counter::impl::load_added(const json* added) {
  if (is_null(added)) return {};
  if (!added->IsArray()) return "added_tokens: not an array";
  for (const json& t : added->GetArray()) {
    const json* content = member(t, "content");
    if (content == nullptr || !content->IsString() || content->GetStringLength() == 0) {
      return "added_tokens: a token without content";
    }
    for (const char* k : {"single_word", "lstrip", "rstrip"}) {
      const json* f = member(t, k);
      if (f != nullptr && f->IsBool() && f->GetBool()) {
        return std::string("added_tokens: ") + k + " is not supported";
      }
    }
    const json* normalized = member(t, "normalized");
    std::string text(str(*content));
    if (normalized != nullptr && normalized->IsBool() && normalized->GetBool()) {
      text = normalize(text);
      if (text.empty()) continue;
      normalized_added.add(std::move(text));
    } else {
      raw_added.add(std::move(text));
    }
  }
  return {};
}

std::string vocab_counter::impl::load(const json& root) {
  if (!root.IsObject()) return "not a JSON object";
  const json* model = member(root, "model");
  if (model == nullptr || !model->IsObject()) return "no model";
  if (std::string e = load_normalizer(member(root, "normalizer")); !e.empty()) return e;
  bool byte_level = false;
  if (std::string e = load_pre_tokenizer(member(root, "pre_tokenizer"), byte_level); !e.empty()) {
    return e;
  }
  if (!byte_level) return "pre_tokenizer: no ByteLevel (not a byte-level BPE)";
  if (std::string e = load_model(*model); !e.empty()) return e;
  return load_added(member(root, "added_tokens"));  // after the normalizers: it uses them
}

std::string vocab_counter::impl::normalize(std::string_view in) const {
  std::string cur(in);
  for (text::normal_form f : normalizers) {
    if (!text::quick_check(cur, f)) cur = text::normalize(cur, f);
  }
  return cur;
}

uint32_t vocab_counter::impl::count_word(std::string_view word) const {
  const auto* p = reinterpret_cast<const unsigned char*>(word.data());
  const size_t n = word.size();
  if (n <= 1) return static_cast<uint32_t>(n);
  if (ignore_merges) {
    thread_local std::string whole;
    whole.clear();
    for (size_t i = 0; i < n; ++i) whole += byte_chars[p[i]];
    if (vocab.find(whole) != vocab.end()) return 1;
  }
  return n <= 64 ? merge_short(p, n) : merge_long(p, n);
}

uint32_t vocab_counter::impl::merge_short(const unsigned char* p, size_t n) const {
  // Symbols in order, with the merge of each adjacent pair (rank none_rank when there is none).
  // Each round merges the lowest-ranked pair, the leftmost on a tie: the order of the heap in
  // merge_long and in HuggingFace's BPE.
  constexpr uint32_t none_rank = 0xFFFFFFFF;
  std::array<uint32_t, 64> ids;
  std::array<merge, 64> pairs;
  size_t m = n;
  auto pair_of = [&](size_t i) {
    const merge* found = merges.find(ids[i], ids[i + 1]);
    return found != nullptr ? *found : merge{none_rank, 0};
  };
  for (size_t i = 0; i < n; ++i) ids[i] = byte_id[p[i]];
  for (size_t i = 0; i + 1 < n; ++i) pairs[i] = pair_of(i);
  while (m > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < m; ++i) {
      if (pairs[i].rank < pairs[best].rank) best = i;
    }
    if (pairs[best].rank == none_rank) break;
    ids[best] = pairs[best].id;
    for (size_t i = best + 1; i + 1 < m; ++i) ids[i] = ids[i + 1];
    for (size_t i = best + 1; i + 2 < m; ++i) pairs[i] = pairs[i + 1];
    --m;
    if (best > 0) pairs[best - 1] = pair_of(best - 1);
    if (best + 1 < m) pairs[best] = pair_of(best);
  }
  return static_cast<uint32_t>(m);
}

uint32_t vocab_counter::impl::merge_long(const unsigned char* p, size_t n) const {
  struct symbol {
    uint32_t id;
    int32_t prev, next;
    bool alive;
  };
  struct candidate {
    uint32_t rank;
    uint32_t pos;
    uint32_t id;
    bool operator>(const candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<symbol> syms;
  thread_local std::vector<candidate> heap;
  syms.resize(n);
  heap.clear();
  for (size_t i = 0; i < n; ++i) {
    syms[i] = symbol{byte_id[p[i]], static_cast<int32_t>(i) - 1,
                     i + 1 < n ? static_cast<int32_t>(i + 1) : -1, true};
  }
  auto consider = [&](int32_t left) {
    const int32_t right = syms[left].next;
    if (right < 0) return;
    if (const merge* found = merges.find(syms[left].id, syms[right].id); found != nullptr) {
      heap.push_back({found->rank, static_cast<uint32_t>(left), found->id});
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int32_t>(i));
  uint32_t alive = static_cast<uint32_t>(n);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const candidate top = heap.back();
    heap.pop_back();
    symbol& s = syms[top.pos];
    if (!s.alive || s.next < 0) continue;
    const merge* found = merges.find(s.id, syms[s.next].id);
    if (found == nullptr || found->id != top.id) continue;  // the pair has changed
    symbol& right = syms[s.next];
    s.id = top.id;
    right.alive = false;
    s.next = right.next;
    if (s.next >= 0) syms[s.next].prev = static_cast<int32_t>(top.pos);
    --alive;
    if (s.prev >= 0) consider(s.prev);
    consider(static_cast<int32_t>(top.pos));
  }
  return alive;
}

void vocab_counter::impl::split(const split_step& step, const std::vector<std::string_view>& pieces,
                                std::vector<std::string_view>& out) const {
  out.clear();
  thread_local std::vector<text::regex::span> found;
  for (std::string_view piece : pieces) {
    found.clear();
    step.re.find_all(piece, found);  // past the step budget the rest is one match
    size_t from = 0;
    for (const text::regex::span& m : found) {
      if (m.begin > from && step.keep_gaps) out.push_back(piece.substr(from, m.begin - from));
      if (step.keep_matches) out.push_back(piece.substr(m.begin, m.end - m.begin));
      from = m.end;
    }
    if (from < piece.size() && step.keep_gaps) out.push_back(piece.substr(from));
  }
}

uint32_t vocab_counter::impl::count_normalized(std::string_view text) const {
  if (text.empty()) return 0;
  std::vector<std::string_view> pieces{text};
  std::vector<std::string_view> next;
  for (const split_step& step : splits) {  // each step cuts every piece of the one before
    split(step, pieces, next);
    pieces.swap(next);
  }
  std::vector<std::string> prefixed;  // ByteLevel: a space before each piece without one
  if (prefix_space) {
    prefixed.reserve(pieces.size());
    for (std::string_view& piece : pieces) {
      if (piece.empty() || piece[0] == ' ') continue;
      std::string& with_space = prefixed.emplace_back(1, ' ');
      with_space.append(piece);
      piece = with_space;
    }
  }
  if (byte_level_split) {
    split(*byte_level_split, pieces, next);
    pieces.swap(next);
  }
  uint32_t total = 0;
  for (std::string_view w : pieces) total += count_word(w);
  return total;
}

uint32_t vocab_counter::impl::count_text(std::string_view text) const {
  uint32_t total = 0;
  split_added(text, raw_added, total, [&](std::string_view piece) {
    const std::string norm = normalize(piece);
    split_added(norm, normalized_added, total,
                [&](std::string_view rest) { total += count_normalized(rest); });
  });
  return total;
}

vocab_counter::vocab_counter(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
vocab_counter::~vocab_counter() = default;

std::unique_ptr<const vocab_counter> vocab_counter::from_json(std::string_view tokenizer_json,
                                                              std::string& error) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(tokenizer_json.data(), tokenizer_json.size());
  if (doc.HasParseError()) {
    error = "not JSON (at byte " + std::to_string(doc.GetErrorOffset()) + ")";
    return nullptr;
  }
  auto i = std::make_unique<impl>();
  error = i->load(doc);
  if (!error.empty()) return nullptr;
  return std::unique_ptr<const vocab_counter>(new vocab_counter(std::move(i)));
}

uint32_t vocab_counter::count(std::string_view utf8_text) const {
  return impl_->count_text(utf8_text);
}

uint32_t vocab_counter::max_tokens_per_byte() const {
  uint32_t bound = impl_->prefix_space ? 2 : 1;
  for (text::normal_form f : impl_->normalizers) {
    bound *= f == text::normal_form::nfkc || f == text::normal_form::nfkd ? 11 : 3;
  }
  return bound;
}

size_t vocab_counter::vocab_size() const {
  return impl_->vocab.size();
}

}  // namespace tc::scheduling
