// Allocation-free scanning of CSV text as the Gaia Archive writes it: comma-separated fields,
// double quotes around fields that hold commas, arrays as "(a, b, c)" (CSV) or "[a,b,c]" (ECSV),
// numbers parsed with std::from_chars (correctly rounded, like numpy and the C library).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string_view>

namespace xps::xp::text {

inline bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

inline std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

// Splits one line into fields, one call per field. A quoted field is returned without its quotes
// (a doubled quote inside stays doubled: no Archive column holds quotes).
class FieldScanner {
 public:
  explicit FieldScanner(std::string_view line) : m_rest(line) {}

  // The next field, or false when the line is exhausted. Sets `error` (and returns false) for a
  // quoted field without its closing quote.
  bool next(std::string_view& field, const char*& error) {
    if (m_done) return false;
    if (!m_rest.empty() && m_rest.front() == '"') return next_quoted(field, error);
    const std::size_t comma = m_rest.find(',');
    field = m_rest.substr(0, comma);
    advance(comma);
    return true;
  }

 private:
  bool next_quoted(std::string_view& field, const char*& error) {
    std::size_t close = 1;
    for (;;) {
      close = m_rest.find('"', close);
      if (close == std::string_view::npos) {
        error = "unterminated quoted field (truncated line?)";
        m_done = true;
        return false;
      }
      if (close + 1 < m_rest.size() && m_rest[close + 1] == '"') {
        close += 2;  // "" inside a quoted field
        continue;
      }
      break;
    }
    field = m_rest.substr(1, close - 1);
    std::size_t after = close + 1;
    while (after < m_rest.size() && is_blank(m_rest[after])) ++after;
    if (after < m_rest.size() && m_rest[after] != ',') {
      error = "text after a closing quote";
      m_done = true;
      return false;
    }
    advance(after < m_rest.size() ? after : std::string_view::npos);
    return true;
  }

  void advance(std::size_t comma) {
    if (comma == std::string_view::npos) {
      m_done = true;
      m_rest = {};
    } else {
      m_rest.remove_prefix(comma + 1);
    }
  }

  std::string_view m_rest;
  bool m_done = false;
};

// A number with optional surrounding blanks; "nan" (any case) gives NaN. False for anything else.
inline bool parse_double(std::string_view text, double& value) {
  text = trim(text);
  if (text.empty()) return false;
  if (text.front() == '+') text.remove_prefix(1);
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
  return status == std::errc() && end == text.data() + text.size();
}

inline bool parse_int64(std::string_view text, std::int64_t& value) {
  text = trim(text);
  if (text.empty()) return false;
  if (text.front() == '+') text.remove_prefix(1);
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
  return status == std::errc() && end == text.data() + text.size();
}

namespace detail {

inline constexpr std::uint64_t ascii_zeros = 0x3030303030303030;

// How many of the 8 characters in `chunk` (little-endian: the first character in the lowest
// byte) are digits before the first non-digit.
inline int leading_digits(std::uint64_t chunk) noexcept {
  constexpr std::uint64_t high_nibbles = 0xF0F0F0F0F0F0F0F0;
  const std::uint64_t not_digit = ((chunk & high_nibbles) ^ ascii_zeros) |
                                  (((chunk + 0x0606060606060606) & high_nibbles) ^ ascii_zeros);
  return not_digit == 0 ? 8 : __builtin_ctzll(not_digit) / 8;
}

// The value of the first `count` (1..8) digits of `chunk` (SWAR, as in fast_float).
inline std::uint64_t digits_value(std::uint64_t chunk, int count) noexcept {
  const int pad_bits = 8 * (8 - count);  // left-pad with '0' to eight digits
  std::uint64_t v =
      pad_bits == 0 ? chunk : (chunk << pad_bits) | (ascii_zeros & ((1ULL << pad_bits) - 1));
  v -= ascii_zeros;
  v = (v * 10) + (v >> 8);
  v = (((v & 0x000000FF000000FF) * (100 + (1000000ULL << 32))) +
       (((v >> 16) & 0x000000FF000000FF) * (1 + (10000ULL << 32)))) >>
      32;
  return static_cast<std::uint32_t>(v);
}

// Appends the run of digits at p to `mantissa` (eight characters at a time while at least eight
// remain before `end`), counting them in `digits`. False when there are more than 19 digits.
inline bool take_digits(const char*& p, const char* end, std::uint64_t& mantissa,
                        int& digits) noexcept {
  static constexpr std::uint64_t scale[] = {1,      10,      100,      1000,     10000,
                                            100000, 1000000, 10000000, 100000000};
  while (end - p >= 8) {
    std::uint64_t chunk = 0;
    std::memcpy(&chunk, p, sizeof chunk);
    const int count = leading_digits(chunk);
    if (count == 0) return true;
    digits += count;
    if (digits > 19) return false;
    mantissa = mantissa * scale[count] + digits_value(chunk, count);
    p += count;
    if (count < 8) return true;
  }
  for (; p < end && *p >= '0' && *p <= '9'; ++p) {
    if (++digits > 19) return false;
    mantissa = mantissa * 10 + static_cast<std::uint64_t>(*p - '0');
  }
  return true;
}

}  // namespace detail

// Clinger's fast path: a decimal of at most 19 digits whose integer mantissa m is at most 2^53
// and whose power of ten |e| <= 22 is exactly m * 10^e or m / 10^-e, one correctly rounded
// operation on two exact doubles, so the result is the same as std::from_chars'. Most Archive
// numbers (the float32 correlations above all) take it. Returns the end of the number, or
// nullptr when the text needs the general parser (NaN, Inf, long mantissas, large exponents).
inline const char* parse_decimal_fast(const char* p, const char* end, double& value) noexcept {
  static constexpr double powers_of_ten[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                             1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                             1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const bool negative = p < end && *p == '-';
  if (negative) ++p;
  std::uint64_t mantissa = 0;
  int digits = 0;
  if (!detail::take_digits(p, end, mantissa, digits)) return nullptr;
  int exponent = 0;
  if (p < end && *p == '.') {
    ++p;
    const int integer_digits = digits;
    if (!detail::take_digits(p, end, mantissa, digits)) return nullptr;
    exponent = integer_digits - digits;
  }
  if (digits == 0) return nullptr;
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    const bool negative_exponent = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+')) ++p;
    int written = 0;
    int exponent_digits = 0;
    for (; p < end && *p >= '0' && *p <= '9' && exponent_digits < 4; ++p, ++exponent_digits)
      written = written * 10 + (*p - '0');
    if (exponent_digits == 0 || (p < end && *p >= '0' && *p <= '9')) return nullptr;
    exponent += negative_exponent ? -written : written;
  }
  if (mantissa > (std::uint64_t{1} << 53) || exponent < -22 || exponent > 22) return nullptr;
  double result = static_cast<double>(mantissa);
  result = exponent < 0 ? result / powers_of_ten[-exponent] : result * powers_of_ten[exponent];
  value = negative ? -result : result;
  return p;
}

struct ArrayParse {
  std::size_t count = 0;        // values in the array (also those beyond out.size())
  const char* error = nullptr;  // why the text is not an array of numbers
};

// "(a, b, c)" or "[a,b,c]" (blanks allowed anywhere between tokens): the values go to out[0..]
// up to out.size(); `count` is the number in the text. "()" is an array of no values.
inline ArrayParse parse_number_array(std::string_view text, std::span<double> out) {
  ArrayParse result;
  text = trim(text);
  if (text.size() < 2) {
    result.error = "not an array: expected (...) or [...]";
    return result;
  }
  const char open = text.front();
  const char close = open == '(' ? ')' : ']';
  if ((open != '(' && open != '[') || text.back() != close) {
    result.error = text.back() != close && (open == '(' || open == '[')
                       ? "array not closed (truncated?)"
                       : "not an array: expected (...) or [...]";
    return result;
  }
  const char* p = text.data() + 1;
  const char* const end = text.data() + text.size() - 1;
  while (p < end && is_blank(*p)) ++p;
  if (p == end) return result;
  for (;;) {
    while (p < end && is_blank(*p)) ++p;
    if (p < end && *p == '+') ++p;
    double value = 0.0;
    const char* next = parse_decimal_fast(p, end, value);
    if (!next) {
      const auto parsed = std::from_chars(p, end, value);
      if (parsed.ec != std::errc()) {
        result.error = parsed.ec == std::errc::result_out_of_range ? "array value out of range"
                                                                   : "array value is not a number";
        return result;
      }
      next = parsed.ptr;
    }
    if (result.count < out.size()) out[result.count] = value;
    ++result.count;
    p = next;
    while (p < end && is_blank(*p)) ++p;
    if (p == end) return result;
    if (*p != ',') {
      result.error = "array values not separated by commas";
      return result;
    }
    ++p;
  }
}

inline constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

}  // namespace xps::xp::text
