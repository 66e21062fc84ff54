//! Unicode folding shared by the rules that accept non-ASCII text: NFKC, then default case
//! folding, then NFKC again.

use unicode_normalization::UnicodeNormalization;

/// `NFKC(casefold(NFKC(text)))`. ASCII text takes a fast path (ASCII lower-casing is exactly
/// what the full fold does to it). Callers check the result is a fixed point with
/// [`is_folded`] before accepting it, so the rule is idempotent by construction.
pub(super) fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let nfkc: String = text.nfkc().collect();
    caseless::default_case_fold_str(&nfkc).nfkc().collect()
}

/// Whether folding `folded` again gives it back unchanged.
pub(super) fn is_folded(folded: &str) -> bool {
    folded.is_ascii() && !folded.bytes().any(|b| b.is_ascii_uppercase()) || fold(folded) == folded
}

/// Characters that are invisible or reorder text but are neither white space nor controls:
/// zero-width spaces and joiners, direction marks and embeddings, word joiner and invisible
/// operators, the byte-order mark, soft hyphen and the Mongolian vowel separator.
pub(super) fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// Decodes `%XX` escapes in a URL path segment; `None` if an escape is malformed or the result
/// is not UTF-8.
pub(super) fn percent_decode(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_applies_compatibility_and_case_folding() {
        assert_eq!(fold("ＪＯＨＮ"), "john");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("ΣΊΣΥΦΟΣ"), "σίσυφοσ");
        assert_eq!(fold("ﬁ"), "fi");
        assert!(is_folded("strasse"));
        assert!(!is_folded("Straße"));
    }

    #[test]
    fn percent_decode_handles_utf8_and_refuses_malformed_escapes() {
        assert_eq!(percent_decode("%D0%B4%D1%83").as_deref(), Some("ду"));
        assert_eq!(percent_decode("a%5Fb").as_deref(), Some("a_b"));
        assert_eq!(percent_decode("a%5"), None);
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
