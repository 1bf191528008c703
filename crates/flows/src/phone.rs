//! Phone numbers typed on a keypad: `PhoneNumberValidation` of `GetParticipantInput` and
//! the checks of `UpdateContactCallbackNumber`. Numbers are stored in E.164 (`+14155550100`),
//! as Amazon Connect stores them.

/// Calling code and national significant number lengths for the countries we know.
/// A `Local` number for a country not listed here is refused (InvalidPhoneNumber) rather than
/// guessed at; `E164` input works for every country.
const COUNTRIES: &[(&str, &str, usize, usize)] = &[
    ("US", "1", 10, 10),
    ("CA", "1", 10, 10),
    ("PR", "1", 10, 10),
    ("GB", "44", 9, 10),
    ("IE", "353", 7, 9),
    ("FR", "33", 9, 9),
    ("DE", "49", 6, 13),
    ("ES", "34", 9, 9),
    ("IT", "39", 6, 11),
    ("NL", "31", 9, 9),
    ("AU", "61", 9, 9),
    ("NZ", "64", 8, 10),
    ("IN", "91", 10, 10),
    ("JP", "81", 9, 10),
    ("MX", "52", 10, 10),
    ("BR", "55", 10, 11),
];

/// Normalises keypad input to E.164, or `None` when it is not a valid number.
///
/// `Local`: the national number, optionally with a trunk `0` (or `1` in North America) or the
/// country code in front. `E164`: the country code and number, with or without `+`.
pub fn normalize(input: &str, number_format: &str, country_code: &str) -> Option<String> {
    let digits = input.strip_prefix('+').unwrap_or(input);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if number_format.eq_ignore_ascii_case("E164") {
        return is_e164_digits(digits).then(|| format!("+{digits}"));
    }
    let &(_, code, min, max) = COUNTRIES.iter().find(|c| c.0.eq_ignore_ascii_case(country_code))?;
    let national = if (min..=max).contains(&digits.len()) && !(code == "1" && digits.starts_with('1')) {
        digits
    } else if let Some(rest) = digits.strip_prefix(code).filter(|r| (min..=max).contains(&r.len())) {
        rest
    } else {
        digits.strip_prefix('0').filter(|r| (min..=max).contains(&r.len()))?
    };
    // North American numbers: area code and exchange never start with 0 or 1.
    if code == "1"
        && (national.starts_with(['0', '1']) || national.get(3..).is_some_and(|s| s.starts_with(['0', '1'])))
    {
        return None;
    }
    Some(format!("+{code}{national}"))
}

fn is_e164_digits(d: &str) -> bool {
    (8..=15).contains(&d.len()) && !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `number` is a well-formed E.164 number (`+` and 8 to 15 digits).
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(is_e164_digits)
}

/// Whether an E.164 number starts with one of the allowed calling codes (empty list: any).
pub fn is_dialable(number: &str, allowed_codes: &[String]) -> bool {
    allowed_codes.is_empty()
        || allowed_codes.iter().any(|c| number.strip_prefix('+').is_some_and(|d| d.starts_with(c.as_str())))
}
