// Lexicon parsing and the Hyperscan keyword matcher.
//
// Terms are compiled with the literal API (hs_compile_lit_multi: no escaping, NULs allowed) and
// HS_FLAG_CASELESS, in block mode. Start offsets are computed as end - term length, which is
// exact for literals (ASCII case folding keeps lengths), so HS_FLAG_SOM_LEFTMOST and its cost in
// database size and scan time are not needed.
//
// Scratch: hs_scratch_t must not be shared between threads, and hs_alloc_scratch is no per-scan
// call: it re-validates the whole database with a CRC (~300 us for 10,000 terms). So compile()
// allocates one prototype scratch per matcher (never scanned with), and each thread keeps a small
// cache of scratches cloned from prototypes (hs_clone_scratch: an allocation and a copy), keyed
// by the matcher's serial number. A scratch is thus only ever used with the database it was
// made for; serial numbers are never reused, unlike database addresses. Thread exit frees them.
#include "protocol/moderation/keywords.hpp"

#include <hs/hs.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <unordered_map>

namespace tc::moderation {

namespace {

constexpr size_t max_term_length = 256;

/// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view blanks = " \t\r\v\f";
  const size_t b = s.find_first_not_of(blanks);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(blanks) - b + 1);
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::atomic<uint64_t> next_serial{1};

/// This thread's scratches, one per recently used matcher, the oldest evicted first.
class thread_scratches {
 public:
  thread_scratches() = default;
  thread_scratches(const thread_scratches&) = delete;
  thread_scratches& operator=(const thread_scratches&) = delete;
  ~thread_scratches() {
    for (slot& s : slots_) hs_free_scratch(s.scratch);
  }

  /// The scratch for matcher `serial`, cloned from its `prototype` on first use; null if
  /// Hyperscan could not allocate one.
  hs_scratch_t* get(uint64_t serial, const hs_scratch_t* prototype) {
    for (const slot& s : slots_) {
      if (s.serial == serial) return s.scratch;
    }
    slot& s = slots_[next_];
    next_ = (next_ + 1) % slots_.size();
    hs_free_scratch(s.scratch);
    s = slot{};
    hs_scratch_t* fresh = nullptr;
    if (hs_clone_scratch(prototype, &fresh) != HS_SUCCESS) return nullptr;
    s = slot{serial, fresh};
    return fresh;
  }

 private:
  struct slot {
    uint64_t serial = 0;
    hs_scratch_t* scratch = nullptr;
  };
  std::array<slot, 8> slots_{};
  size_t next_ = 0;
};

thread_local thread_scratches tls_scratches;

/// A match as Hyperscan reports it, before it becomes a `hit`.
struct raw_match {
  uint32_t begin;
  uint32_t end;
  uint32_t term;
};

}  // namespace

struct keyword_matcher::impl {
  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl();

  hs_database_t* db = nullptr;  // null when there are no terms; owned
  uint64_t serial = 0;
  std::vector<uint32_t> lengths;        // per term id
  std::vector<action> actions;          // per term id
  std::vector<uint32_t> category_of;    // per term id, index into `categories`
  std::vector<std::string> categories;  // distinct category names
  size_t max_bytes = 0;
  bool any_block = false;

  hs_scratch_t* prototype = nullptr;  // owned; cloned into each thread's cache, never scanned

  /// The calling thread's scratch for this database; null if Hyperscan could not allocate one.
  hs_scratch_t* scratch() const { return tls_scratches.get(serial, prototype); }
};

bool parse_lexicon(std::string_view text, std::string_view default_category,
                   std::vector<lexicon_term>& out, std::string& error) {
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  if (text.substr(0, bom.size()) == bom) text.remove_prefix(bom.size());

  std::vector<lexicon_term> parsed;
  std::string category(default_category);
  size_t line_no = 0;
  const auto fail = [&](std::string_view why) {
    error = "line " + std::to_string(line_no) + ": " + std::string(why);
    return false;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!valid_utf8(line)) return fail("invalid UTF-8");
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '[') {
      if (line.size() < 2 || line.back() != ']') {
        return fail("malformed category header (expected [name])");
      }
      const std::string_view name = trim(line.substr(1, line.size() - 2));
      if (name.find_first_of("[]") != std::string_view::npos) {
        return fail("malformed category header (brackets inside the name)");
      }
      if (name.empty()) return fail("empty category name");
      category = std::string(name);
      continue;
    }
    if (line.size() > max_term_length) return fail("term longer than 256 bytes");
    if (category.empty()) return fail("term before any [category] header, and no default category");
    parsed.push_back(lexicon_term{std::string(line), category});
  }
  out.insert(out.end(), std::make_move_iterator(parsed.begin()),
             std::make_move_iterator(parsed.end()));
  return true;
}

std::shared_ptr<const keyword_matcher> keyword_matcher::compile(
    const std::vector<lexicon_term>& terms, const std::map<std::string, action>& actions,
    action fallback, std::string& error) {
  auto im = std::make_unique<impl>();
  im->serial = next_serial.fetch_add(1, std::memory_order_relaxed);

  std::vector<std::string_view> texts;              // per term id, the first spelling seen
  std::unordered_map<std::string, uint32_t> id_of;  // ASCII-folded text -> term id
  std::unordered_map<std::string_view, uint32_t> category_index;
  for (size_t i = 0; i < terms.size(); ++i) {
    const lexicon_term& t = terms[i];
    if (t.text.empty()) {
      error = "term " + std::to_string(i) + " is empty";
      return nullptr;
    }
    if (t.text.size() > std::numeric_limits<uint32_t>::max()) {
      error = "term " + std::to_string(i) + " is too long";
      return nullptr;
    }
    const auto found = actions.find(t.category);
    const action act = found == actions.end() ? fallback : found->second;
    auto [cat, new_cat] =
        category_index.try_emplace(t.category, static_cast<uint32_t>(im->categories.size()));
    if (new_cat) im->categories.push_back(t.category);

    auto [it, added] = id_of.try_emplace(ascii_lower(t.text), static_cast<uint32_t>(texts.size()));
    if (added) {
      texts.push_back(t.text);
      im->lengths.push_back(static_cast<uint32_t>(t.text.size()));
      im->actions.push_back(act);
      im->category_of.push_back(cat->second);
      im->max_bytes = std::max(im->max_bytes, t.text.size());
    } else if (act > im->actions[it->second]) {  // same term twice: the stronger action wins
      im->actions[it->second] = act;
      im->category_of[it->second] = cat->second;
    }
  }
  im->any_block =
      std::find(im->actions.begin(), im->actions.end(), action::block) != im->actions.end();

  if (!texts.empty()) {
    std::vector<const char*> exprs;
    std::vector<size_t> lens;
    std::vector<unsigned> flags(texts.size(), HS_FLAG_CASELESS);
    std::vector<unsigned> ids;
    for (size_t id = 0; id < texts.size(); ++id) {
      exprs.push_back(texts[id].data());
      lens.push_back(texts[id].size());
      ids.push_back(static_cast<unsigned>(id));
    }
    hs_compile_error_t* compile_error = nullptr;
    const hs_error_t rc = hs_compile_lit_multi(exprs.data(), flags.data(), ids.data(), lens.data(),
                                               static_cast<unsigned>(texts.size()), HS_MODE_BLOCK,
                                               nullptr, &im->db, &compile_error);
    if (rc != HS_SUCCESS) {
      error = "keyword compile failed";
      if (compile_error != nullptr) {
        if (compile_error->expression >= 0 &&
            static_cast<size_t>(compile_error->expression) < texts.size()) {
          error += " at term \"" + std::string(texts[compile_error->expression]) + "\"";
        }
        if (compile_error->message != nullptr) error += ": " + std::string(compile_error->message);
      }
      hs_free_compile_error(compile_error);
      return nullptr;
    }
    if (hs_alloc_scratch(im->db, &im->prototype) != HS_SUCCESS) {
      error = "keyword scratch allocation failed";
      return nullptr;
    }
  }

  std::shared_ptr<keyword_matcher> m(new keyword_matcher());
  m->impl_ = std::move(im);
  return m;
}

keyword_matcher::impl::~impl() {
  hs_free_scratch(prototype);
  hs_free_database(db);
}

keyword_matcher::~keyword_matcher() = default;

std::vector<hit> keyword_matcher::scan(std::string_view text) const {
  const impl& m = *impl_;
  // Offsets are 32-bit: a longer text is scanned up to 4 GiB.
  text = text.substr(0, std::numeric_limits<uint32_t>::max());
  if (m.db == nullptr || text.empty()) return {};

  struct context {
    const impl* m;
    std::vector<raw_match> found;
  } ctx{&m, {}};
  const auto on_match = [](unsigned id, unsigned long long, unsigned long long to, unsigned,
                           void* p) -> int {
    auto* c = static_cast<context*>(p);
    const auto end = static_cast<uint32_t>(to);
    c->found.push_back(raw_match{end - c->m->lengths[id], end, id});
    return 0;
  };
  hs_scratch_t* scratch = m.scratch();
  const hs_error_t rc = scratch == nullptr
                            ? HS_NOMEM
                            : hs_scan(m.db, text.data(), static_cast<unsigned>(text.size()), 0,
                                      scratch, on_match, &ctx);
  if (rc != HS_SUCCESS) {
    // Fail closed: a scan that could not run blocks the whole text.
    return {hit{0, static_cast<uint32_t>(text.size()), "keywords.error", action::block}};
  }

  std::sort(ctx.found.begin(), ctx.found.end(), [](const raw_match& a, const raw_match& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::vector<hit> hits;
  hits.reserve(ctx.found.size());
  for (const raw_match& r : ctx.found) {
    hits.push_back(hit{r.begin, r.end, m.categories[m.category_of[r.term]], m.actions[r.term]});
  }
  return hits;
}

bool keyword_matcher::blocks(std::string_view text) const {
  const impl& m = *impl_;
  text = text.substr(0, std::numeric_limits<uint32_t>::max());
  if (m.db == nullptr || !m.any_block || text.empty()) return false;

  const auto on_match = [](unsigned id, unsigned long long, unsigned long long, unsigned,
                           void* p) -> int {
    return static_cast<const impl*>(p)->actions[id] == action::block ? 1 : 0;
  };
  hs_scratch_t* scratch = m.scratch();
  if (scratch == nullptr) return true;  // fail closed
  const hs_error_t rc = hs_scan(m.db, text.data(), static_cast<unsigned>(text.size()), 0, scratch,
                                on_match, const_cast<impl*>(&m));
  return rc != HS_SUCCESS;  // HS_SCAN_TERMINATED: a block term; any other error fails closed
}

size_t keyword_matcher::size() const {
  return impl_->lengths.size();
}

size_t keyword_matcher::max_term_bytes() const {
  return impl_->max_bytes;
}

}  // namespace tc::moderation
