// Moderation vocabulary: action names, the strongest action of a verdict, and masking.
#include "protocol/moderation/moderation.hpp"

#include <algorithm>
#include <utility>

namespace tc::moderation {

namespace {

bool continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Bytes taken by the code point starting at `p` (at most `left`): a complete sequence counts
// as one, any malformed or truncated byte as one on its own.
size_t code_point_bytes(const unsigned char* p, size_t left) {
  const unsigned char c = p[0];
  size_t n = 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
  }
  if (n > left) return 1;
  for (size_t i = 1; i < n; ++i) {
    if (!continuation(p[i])) return 1;
  }
  return n;
}

}  // namespace

std::string_view action_name(action a) {
  switch (a) {
    case action::allow:
      return "allow";
    case action::flag:
      return "flag";
    case action::mask:
      return "mask";
    case action::block:
      return "block";
  }
  return "unknown";
}

bool parse_action(std::string_view name, action& out) {
  for (action a : {action::allow, action::flag, action::mask, action::block}) {
    if (name == action_name(a)) {
      out = a;
      return true;
    }
  }
  return false;
}

action strongest(const std::vector<hit>& hits) {
  action best = action::allow;
  for (const hit& h : hits) best = std::max(best, h.act);
  return best;
}

std::string apply_masks(std::string_view text, const std::vector<hit>& hits) {
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const hit& h : hits) {
    const size_t end = std::min<size_t>(h.end, text.size());
    if (h.act == action::mask && h.begin < end) ranges.emplace_back(h.begin, end);
  }
  if (ranges.empty()) return std::string(text);
  std::sort(ranges.begin(), ranges.end());

  std::string out;
  out.reserve(text.size());
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  size_t pos = 0;  // next byte of `text` not yet written
  size_t r = 0;
  while (r < ranges.size()) {
    const size_t begin = ranges[r].first;
    size_t end = ranges[r].second;
    for (++r; r < ranges.size() && ranges[r].first <= end; ++r) {
      end = std::max(end, ranges[r].second);
    }
    out.append(text.substr(pos, begin - pos));
    for (size_t i = begin; i < end;) {
      i += code_point_bytes(bytes + i, end - i);
      out.push_back('*');
    }
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace tc::moderation
