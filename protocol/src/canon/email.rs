//! E-mail addresses: ASCII dot-atom local part, domain by the domain rule, all lower case.

use super::Rule;
use super::domain::canonical_domain;

/// Longest address in bytes (RFC 5321 §4.5.3.1.3 path limit less the angle brackets).
const MAX_EMAIL_BYTES: usize = 254;
/// Longest local part in bytes (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_BYTES: usize = 64;

/// Canonicalises an e-mail address (already trimmed) to `local@domain`.
pub(super) fn canonical_email(input: &str) -> Result<String, Rule> {
    let (local, domain) = input.split_once('@').ok_or(Rule::EmailSyntax)?;
    if domain.contains('@') {
        return Err(Rule::EmailSyntax);
    }
    check_local(local)?;
    if domain.starts_with('[') {
        return Err(Rule::EmailDomain);
    }
    let domain = canonical_domain(domain).map_err(|_| Rule::EmailDomain)?;
    let mut address = String::with_capacity(local.len() + 1 + domain.len());
    address.extend(local.chars().map(|c| c.to_ascii_lowercase()));
    address.push('@');
    address.push_str(&domain);
    if address.len() > MAX_EMAIL_BYTES {
        return Err(Rule::EmailSyntax);
    }
    Ok(address)
}

/// RFC 5322 dot-atom: atext runs separated by single dots.
fn check_local(local: &str) -> Result<(), Rule> {
    let is_atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let ok = !local.is_empty()
        && local.len() <= MAX_LOCAL_BYTES
        && local.split('.').all(|run| !run.is_empty() && run.chars().all(is_atext));
    if ok { Ok(()) } else { Err(Rule::EmailLocal) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_with_punycode_domains() {
        assert_eq!(canonical_email("John.Doe@Example.COM").as_deref(), Ok("john.doe@example.com"));
        assert_eq!(canonical_email("a+tag@bücher.de.").as_deref(), Ok("a+tag@xn--bcher-kva.de"));
    }

    #[test]
    fn malformed_addresses_name_the_broken_part() {
        assert_eq!(canonical_email("john.example.com"), Err(Rule::EmailSyntax));
        assert_eq!(canonical_email("a@b@example.com"), Err(Rule::EmailSyntax));
        assert_eq!(canonical_email(".john@example.com"), Err(Rule::EmailLocal));
        assert_eq!(canonical_email("jo..hn@example.com"), Err(Rule::EmailLocal));
        assert_eq!(canonical_email("\"john\"@example.com"), Err(Rule::EmailLocal));
        assert_eq!(canonical_email("jöhn@example.com"), Err(Rule::EmailLocal));
        assert_eq!(canonical_email("john@[192.0.2.1]"), Err(Rule::EmailDomain));
        assert_eq!(canonical_email("john@localhost"), Err(Rule::EmailDomain));
        assert_eq!(
            canonical_email(&format!("{}@example.com", "a".repeat(65))),
            Err(Rule::EmailLocal)
        );
    }
}
