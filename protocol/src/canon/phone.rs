//! Phone numbers: E.164 through libphonenumber's metadata (the `phonenumber` crate), with a
//! default region for national-format numbers.

use std::str::FromStr;

use phonenumber::country;

use super::Rule;

/// Separators accepted between digits. Letters (vanity numbers), `#`, `;` and `*` are refused,
/// which also keeps extensions and RFC 3966 parameters out.
const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')', '/'];

/// Canonicalises a phone number (already trimmed) to E.164, `+` then digits.
pub(super) fn canonical_phone(input: &str, region: Option<&str>) -> Result<String, Rule> {
    let digits_part = input.strip_prefix('+').unwrap_or(input);
    if !digits_part.chars().all(|c| c.is_ascii_digit() || SEPARATORS.contains(&c))
        || !digits_part.contains(|c: char| c.is_ascii_digit())
    {
        return Err(Rule::PhoneChars);
    }
    let region = region.map(parse_region).transpose()?;
    if !input.starts_with('+') && region.is_none() {
        return Err(Rule::PhoneRegionMissing);
    }
    let number = phonenumber::parse(region, input).map_err(|_| Rule::PhoneSyntax)?;
    if number.extension().is_some() {
        return Err(Rule::PhoneExtension);
    }
    if !phonenumber::is_valid(&number) {
        return Err(Rule::PhoneInvalid);
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// An ISO 3166 alpha-2 code, in either case, that the metadata knows.
fn parse_region(region: &str) -> Result<country::Id, Rule> {
    let region = region.trim();
    if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Rule::PhoneRegion);
    }
    country::Id::from_str(&region.to_ascii_uppercase()).map_err(|_| Rule::PhoneRegion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_forms_agree() {
        for (input, region) in [
            ("+33 1 42 68 53 00", None),
            ("01 42 68 53 00", Some("FR")),
            ("01.42.68.53.00", Some("fr")),
            ("0033 1 42 68 53 00", Some("FR")),
            ("+33 (0)1 42 68 53 00", Some("DE")),
        ] {
            assert_eq!(canonical_phone(input, region).as_deref(), Ok("+33142685300"), "{input}");
        }
    }

    #[test]
    fn refusals_name_the_rule() {
        assert_eq!(canonical_phone("01 42 68 53 00", None), Err(Rule::PhoneRegionMissing));
        assert_eq!(canonical_phone("01 42 68 53 00", Some("XX")), Err(Rule::PhoneRegion));
        assert_eq!(canonical_phone("01 42 68 53 00", Some("FRA")), Err(Rule::PhoneRegion));
        assert_eq!(canonical_phone("1-800-FLOWERS", Some("US")), Err(Rule::PhoneChars));
        assert_eq!(canonical_phone("+33 1 42 68 53 00 ext. 12", None), Err(Rule::PhoneChars));
        assert_eq!(canonical_phone("+", None), Err(Rule::PhoneChars));
        assert_eq!(canonical_phone("+33 1", None), Err(Rule::PhoneSyntax));
        assert_eq!(canonical_phone("+33 9 99 99 99 99 99", None), Err(Rule::PhoneInvalid));
    }
}
