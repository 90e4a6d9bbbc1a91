#!/usr/bin/env python3
"""Writes protocol/text/unicode_data.cpp: the Unicode tables protocol/text/ needs (General
Category, White_Space, canonical combining class, canonical and compatibility decompositions,
canonical composition pairs, the normalization quick-check "inert" flags and simple case
folding), as compact sorted range tables, from Python's unicodedata (Unicode 14.0.0 in Debian
12's python3.11).

    python3 scripts/unicode_tables.py > protocol/text/unicode_data.cpp
    clang-format -i protocol/text/unicode_data.cpp

The output depends only on unicodedata.unidata_version; the file states the version it holds.
"""
import sys
import unicodedata as ud

MAX = 0x110000
# Order of protocol/text/unicode.hpp's `enum class gc`; Cn (unassigned) is 0.
CATEGORIES = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc",
              "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp",
              "Cc", "Cf", "Cs", "Co"]
# PropList.txt White_Space (unchanged since Unicode 6.3); unicodedata does not expose it.
WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
               (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
               (0x3000, 0x3000)]
S_BASE, L_BASE, V_BASE, T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
L_COUNT, V_COUNT, T_COUNT = 19, 21, 28
S_COUNT = L_COUNT * V_COUNT * T_COUNT


def runs(values):
    """[(start, value)] where value changes, over 0..MAX-1."""
    out = []
    prev = None
    for cp in range(MAX):
        v = values(cp)
        if v != prev:
            out.append((cp, v))
            prev = v
    return out


def mapping(cp):
    """(is_compat, [code points]) of cp's one-level decomposition, or None."""
    d = ud.decomposition(chr(cp))
    if not d:
        return None
    parts = d.split()
    compat = parts[0].startswith("<")
    if compat:
        parts = parts[1:]
    return compat, [int(p, 16) for p in parts]


def full(cp, compat):
    """Full (recursive) canonical or compatibility decomposition of cp, Hangul excluded."""
    m = mapping(cp)
    if m is None or (m[0] and not compat):
        return [cp]
    out = []
    for c in m[1]:
        out.extend(full(c, compat))
    return out


def emit_array(name, ctype, items, per_line=8):
    print(f"const {ctype} {name}[] = {{")
    for i in range(0, len(items), per_line):
        print("    " + ", ".join(items[i:i + per_line]) + ",")
    print("};")
    print(f"const size_t {name}_size = {len(items)};")
    print()


def main():
    cats = {c: i for i, c in enumerate(CATEGORIES)}
    gc_runs = runs(lambda cp: cats[ud.category(chr(cp))])
    ccc_runs = runs(lambda cp: ud.combining(chr(cp)))

    # Decompositions: full canonical and full compatibility, into one pool of code points.
    pool = []
    decomp = []
    for cp in range(MAX):
        if S_BASE <= cp < S_BASE + S_COUNT or mapping(cp) is None:
            continue
        canon = full(cp, False)
        compat = full(cp, True)
        entry = [cp]
        for seq in (canon, compat):
            if seq == [cp]:
                entry.append(0)
                continue
            assert len(seq) < 32
            entry.append(len(pool) << 5 | len(seq))
            pool.extend(seq)
        decomp.append(entry)
    assert len(pool) < (1 << 27)

    # Primary composites: a canonical pair that NFC composes back (not excluded, not a
    # singleton, not a non-starter decomposition).
    comps = []
    seconds = set()
    for cp in range(MAX):
        m = mapping(cp)
        if m is None or m[0] or len(m[1]) != 2:
            continue
        a, b = m[1]
        if ud.normalize("NFC", chr(a) + chr(b)) == chr(cp):
            comps.append((a, b, cp))
            seconds.add(b)
    comps.sort()
    for v in range(V_BASE, V_BASE + V_COUNT):
        seconds.add(v)
    for t in range(T_BASE + 1, T_BASE + T_COUNT):
        seconds.add(t)

    # Inert: a starter that its form leaves as it is and that never composes with what comes
    # before it. A text of inert code points only is already in that form.
    forms = ["NFD", "NFC", "NFKD", "NFKC"]

    def inert(cp):
        if 0xD800 <= cp <= 0xDFFF:
            return 0xF
        c = chr(cp)
        if ud.combining(c) != 0:
            return 0
        mask = 0
        for bit, form in enumerate(forms):
            if ud.normalize(form, c) != c:
                continue
            if form.endswith("C") and cp in seconds:
                continue
            mask |= 1 << bit
        return mask

    inert_runs = runs(inert)

    # Simple case folding: a code point whose full folding is one code point, else its
    # lowercase when that is one code point.
    folds = []
    for cp in range(MAX):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        f = c.casefold()
        if len(f) != 1:
            f = c.lower()
        if len(f) == 1 and f != c:
            folds.append((cp, ord(f)))

    print(f"""\
// GENERATED by scripts/unicode_tables.py from Unicode {ud.unidata_version}
// (Python {sys.version_info.major}.{sys.version_info.minor}'s unicodedata). Do not edit; regenerate with:
//   python3 scripts/unicode_tables.py > protocol/text/unicode_data.cpp
//   clang-format -i protocol/text/unicode_data.cpp
// Tables for protocol/text/unicode.cpp, each sorted by code point (see unicode_data.hpp).
// clang-format off
#include "protocol/text/unicode_data.hpp"

namespace tc::text::data {{

const char unicode_version[] = "{ud.unidata_version}";
""")
    emit_array("gc_runs", "uint32_t", [f"0x{s << 5 | v:x}" for s, v in gc_runs])
    emit_array("white_space", "uint32_t", [f"0x{v:x}" for pair in WHITE_SPACE for v in pair])
    emit_array("ccc_runs", "uint32_t", [f"0x{s << 8 | v:x}" for s, v in ccc_runs])
    emit_array("inert_runs", "uint32_t", [f"0x{s << 4 | v:x}" for s, v in inert_runs])
    emit_array("decompositions", "decomposition",
               [f"{{0x{c:x}, 0x{a:x}, 0x{b:x}}}" for c, a, b in decomp], per_line=3)
    emit_array("decomposition_pool", "uint32_t", [f"0x{c:x}" for c in pool])
    emit_array("compositions", "composition",
               [f"{{0x{a:x}, 0x{b:x}, 0x{c:x}}}" for a, b, c in comps], per_line=3)
    emit_array("case_folds", "case_fold", [f"{{0x{a:x}, 0x{b:x}}}" for a, b in folds],
               per_line=4)
    print("}  // namespace tc::text::data")


if __name__ == "__main__":
    main()
