//! URLs: the WHATWG URL standard (`url` crate) plus a short list of documented extra steps.

use url::{Host, Url};

use super::Rule;

/// Canonicalises an http or https URL (already trimmed).
///
/// The WHATWG parser lower-cases and punycodes the host, removes the scheme's default port,
/// resolves `.` and `..` path segments, turns an empty path into `/` and percent-encodes
/// characters outside its allowed sets (existing escapes are kept as written). On top of it:
/// the scheme must be http or https, user name and password are refused, the fragment is
/// removed and a trailing dot on a domain host is removed. The query is kept as serialised.
pub(super) fn canonical_url(input: &str) -> Result<String, Rule> {
    let mut url = Url::parse(input).map_err(|_| Rule::UrlSyntax)?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Rule::UrlScheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Rule::UrlUserinfo);
    }
    url.set_fragment(None);
    if let Some(Host::Domain(domain)) = url.host()
        && let Some(stripped) = domain.strip_suffix('.')
    {
        if stripped.is_empty() {
            return Err(Rule::UrlSyntax);
        }
        let stripped = stripped.to_owned();
        url.set_host(Some(&stripped)).map_err(|_| Rule::UrlSyntax)?;
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatwg_rules_and_extra_steps_apply() {
        let cases = [
            ("HTTPS://Example.COM", "https://example.com/"),
            ("https://example.com:443/a/./b/../c?q=Á#frag", "https://example.com/a/c?q=%C3%81"),
            ("http://example.com:80/", "http://example.com/"),
            ("http://example.com:8080/", "http://example.com:8080/"),
            ("https://bücher.de./x", "https://xn--bcher-kva.de/x"),
            ("https://example.com/A%2fb?B=1&a=2", "https://example.com/A%2fb?B=1&a=2"),
            ("https://example.com/x?", "https://example.com/x?"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical_url(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn refusals_name_the_rule() {
        assert_eq!(canonical_url("example.com/x"), Err(Rule::UrlSyntax));
        assert_eq!(canonical_url("ftp://example.com/x"), Err(Rule::UrlScheme));
        assert_eq!(canonical_url("mailto:a@example.com"), Err(Rule::UrlScheme));
        assert_eq!(canonical_url("https://user:pw@example.com/"), Err(Rule::UrlUserinfo));
        assert_eq!(canonical_url("https://exa mple.com/"), Err(Rule::UrlSyntax));
    }
}
