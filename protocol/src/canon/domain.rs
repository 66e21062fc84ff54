//! Domain names: UTS 46 to ASCII (punycode, lower case), trailing dot removed, DNS shape checked.

use super::Rule;

/// Longest domain name in bytes, without the trailing dot (RFC 1035 §2.3.4).
const MAX_DOMAIN_BYTES: usize = 253;
/// Longest label in bytes (RFC 1035 §2.3.4).
const MAX_LABEL_BYTES: usize = 63;

/// Canonicalises a domain name. The input is already trimmed.
pub(super) fn canonical_domain(input: &str) -> Result<String, Rule> {
    let input = input.strip_suffix('.').unwrap_or(input);
    if input.is_empty() {
        return Err(Rule::Domain);
    }
    // The WHATWG URL host parser's domain-to-ASCII: UTS 46 mapping (which lower-cases and
    // applies NFC), punycode, and the URL standard's forbidden domain code points.
    let ascii = idna::domain_to_ascii_cow(input.as_bytes(), idna::AsciiDenyList::URL)
        .map_err(|_| Rule::Domain)?;
    check_shape(&ascii)?;
    Ok(ascii.into_owned())
}

/// Length limits, at least two labels, and a top-level label that starts with a letter (which
/// keeps IPv4 addresses, and names the URL standard would read as one, out).
fn check_shape(ascii: &str) -> Result<(), Rule> {
    if ascii.len() > MAX_DOMAIN_BYTES || !ascii.contains('.') {
        return Err(Rule::Domain);
    }
    if ascii.split('.').any(|label| label.is_empty() || label.len() > MAX_LABEL_BYTES) {
        return Err(Rule::Domain);
    }
    let top = ascii.rsplit('.').next().unwrap_or_default();
    if !top.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(Rule::Domain);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_punycoded_lower_cased_and_lose_the_trailing_dot() {
        assert_eq!(canonical_domain("Example.COM.").as_deref(), Ok("example.com"));
        assert_eq!(canonical_domain("bücher.de").as_deref(), Ok("xn--bcher-kva.de"));
        assert_eq!(canonical_domain("ПРИМЕР.РФ").as_deref(), Ok("xn--e1afmkfd.xn--p1ai"));
    }

    #[test]
    fn non_domains_are_refused() {
        for input in [
            "",
            ".",
            "com",
            "a..com",
            "example.com..",
            "1.2.3.4",
            "example.123",
            "exa mple.com",
            "example.com/path",
            "example.com:80",
            "user@example.com",
            "https://example.com",
            &format!("{}.com", "a".repeat(64)),
            &format!("{}com", "a.".repeat(127)),
        ] {
            assert_eq!(canonical_domain(input), Err(Rule::Domain), "{input:?}");
        }
    }
}
