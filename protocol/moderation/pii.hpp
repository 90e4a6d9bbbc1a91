// PII detection (issue 5, the `pii` engine): mainland ID card numbers (checksum verified), mainland
// mobile numbers, bank card numbers (Luhn) and e-mail addresses in UTF-8 text. Pure; any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace tc::moderation {

enum class pii_kind : uint8_t { id_card, phone, bank_card, email };
/// "id_card" | "phone" | "bank_card" | "email".
std::string_view pii_kind_name(pii_kind k);
bool parse_pii_kind(std::string_view name, pii_kind& out);

/// One match: bytes [begin, end) of the text.
struct pii_match {
  pii_kind kind = pii_kind::email;
  uint32_t begin = 0;
  uint32_t end = 0;
  friend bool operator==(const pii_match&, const pii_match&) = default;
};

/// Every match in `text`, ordered by begin, never overlapping (a digit run that is a valid ID
/// card is not also reported as a bank card). Digit runs must not touch other ASCII digits or
/// letters; CJK text around them is fine.
std::vector<pii_match> find_pii(std::string_view text);

/// 18-character resident ID: 17 digits + check character (digit or X/x) by ISO 7064 MOD 11-2,
/// with a plausible region code and birth date.
bool valid_id_card(std::string_view id);
/// Luhn checksum over a string of ASCII digits (no separators).
bool luhn_valid(std::string_view digits);

}  // namespace tc::moderation
