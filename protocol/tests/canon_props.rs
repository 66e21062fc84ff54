//! Property tests of canonicalisation: no input panics, every canonical form is a fixed point,
//! and the equivalent ways of writing one identifier agree.

use crossmatch_protocol::{Canonical, Kind, canonicalize};
use proptest::prelude::*;

/// Platforms as callers name them, including unknown and malformed ones.
fn platform() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "x",
            "twitter",
            "X",
            "telegram",
            "facebook",
            "instagram",
            "youtube",
            "tiktok",
            "vk.com",
            "www.VK.com",
            "mastodon.social",
            "m.me",
            "t.me",
            "bücher.de",
            "vk",
            "",
        ])
        .prop_map(|name| Some(name.to_owned())),
        "\\PC{0,12}".prop_map(Some),
    ]
}

fn region() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec!["FR", "de", "US", "GB", "IT", "XX", "", "FRA"])
            .prop_map(|region| Some(region.to_owned())),
    ]
}

/// Inputs shaped like identifiers, so the deeper rules are reached, plus arbitrary text.
fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[@ ]?[A-Za-z0-9_.\\-]{0,35}[ ]?",
        "(https?://)?((www|m|mobile)\\.)?(twitter|x|t|facebook|fb|instagram|youtube|tiktok|vk)\\.(com|me)(:[0-9]{1,4})?/[@A-Za-z0-9_.%/?=#&-]{0,40}",
        "[+0]?[0-9 ().\\-/]{0,20}",
        "[A-Za-z0-9.+_-]{0,12}@[A-Za-z0-9.\\-ü]{0,20}",
        "(HTTPS?|https?|ftp)://[A-Za-z0-9.\\-ü_\\[\\]:@]{0,20}(/[A-Za-z0-9.%?#=&é/\\\\ -]{0,30})?",
    ]
}

/// Feeds a canonical form's value back in with its kind and platform.
fn refeed(canonical: &Canonical) -> Canonical {
    canonicalize(canonical.kind(), canonical.platform(), None, canonical.value())
        .unwrap_or_else(|error| panic!("{} refused on refeed: {error}", canonical.as_str()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn canonicalisation_never_panics_and_is_idempotent(
        kind in prop::sample::select(Kind::ALL.to_vec()),
        platform in platform(),
        region in region(),
        input in input(),
    ) {
        let result = canonicalize(kind, platform.as_deref(), region.as_deref(), &input);
        match result {
            Ok(canonical) => {
                let again = refeed(&canonical);
                prop_assert_eq!(again.as_str(), canonical.as_str());
                let parsed: Canonical = canonical.as_str().parse()
                    .map_err(|error| TestCaseError::fail(format!("{}: {error}", canonical.as_str())))?;
                prop_assert_eq!(parsed, canonical);
            }
            Err(error) => {
                prop_assert_eq!(error.input, input);
            }
        }
    }

    #[test]
    fn arbitrary_unicode_handles_on_other_platforms_are_idempotent(
        handle in "\\PC{1,20}",
        platform in prop::sample::select(vec!["vk.com", "youtube"]),
    ) {
        if let Ok(canonical) = canonicalize(Kind::Account, Some(platform), None, &handle) {
            prop_assert_eq!(refeed(&canonical), canonical);
        }
    }

    #[test]
    fn handle_forms_agree(
        (platform, handle, host) in prop_oneof![
            ("[A-Za-z0-9_]{1,15}", prop::sample::select(vec!["twitter.com", "x.com"]))
                .prop_map(|(h, host)| ("x", h, host)),
            ("[A-Za-z][A-Za-z0-9_]{4,31}", prop::sample::select(vec!["t.me", "telegram.me"]))
                .prop_map(|(h, host)| ("telegram", h, host)),
            ("[A-Za-z][A-Za-z0-9.]{0,20}[A-Za-z0-9]", prop::sample::select(vec!["facebook.com", "fb.com"]))
                .prop_map(|(h, host)| ("facebook", h, host)),
            "[A-Za-z0-9._]{1,30}".prop_map(|h| ("instagram", h, "instagram.com")),
            "@[A-Za-z0-9._\\-]{3,30}".prop_map(|h| ("youtube", h, "youtube.com")),
            "@[A-Za-z0-9._]{2,24}".prop_map(|h| ("tiktok", h, "tiktok.com")),
            "[A-Za-z0-9_.\\-é]{1,20}".prop_map(|h| ("vk.com", h, "vk.com")),
        ],
        scheme in prop::sample::select(vec!["", "http://", "https://", "HTTPS://"]),
        prefix in prop::sample::select(vec!["", "www.", "m.", "mobile."]),
        upper_host in any::<bool>(),
        tail in prop::sample::select(vec!["", "/", "?lang=en", "/?a=b#c", "#top"]),
        pad in prop::sample::select(vec!["", " ", "\t", "\n "]),
    ) {
        let bare = canonicalize(Kind::Account, Some(platform), None, &handle);
        prop_assume!(bare.is_ok(), "not a {} handle", platform);
        let bare = bare.map_err(|error| TestCaseError::fail(error.to_string()))?;
        let host = if upper_host { host.to_uppercase() } else { host.to_owned() };
        let url = format!("{pad}{scheme}{prefix}{host}/{handle}{tail}{pad}");
        for (given, input) in [
            (Some(platform), format!("{pad}{handle}{pad}")),
            (Some(platform), url.clone()),
            (None, url.clone()),
            (Some(host.as_str()), url),
        ] {
            let other = canonicalize(Kind::Account, given, None, &input)
                .map_err(|error| TestCaseError::fail(format!("{input:?}: {error}")))?;
            prop_assert_eq!(&other, &bare, "{:?}", input);
        }
        if !handle.starts_with('@') {
            let at = canonicalize(Kind::Account, Some(platform), None, &format!("@{handle}"))
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(at, bare);
        }
    }

    #[test]
    fn email_case_and_white_space_do_not_matter(
        local in "[A-Za-z0-9_+\\-]{1,10}(\\.[A-Za-z0-9]{1,5})?",
        domain in "[A-Za-z0-9]{1,10}\\.(com|DE|org|рф)",
        pad in prop::sample::select(vec!["", " ", "\t"]),
        trailing_dot in any::<bool>(),
    ) {
        let dot = if trailing_dot { "." } else { "" };
        let plain = canonicalize(Kind::Email, None, None, &format!("{local}@{domain}"))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let variant = format!("{pad}{}@{}{dot}{pad}", local.to_uppercase(), domain.to_uppercase());
        let other = canonicalize(Kind::Email, None, None, &variant)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(other, plain);
    }

    #[test]
    fn national_and_international_phone_forms_agree(
        (region, code, national) in prop_oneof![
            "[1-7][0-9]{8}".prop_map(|n| ("FR", "33", n)),
            "(30|40|89|151|160|170)[0-9]{7}".prop_map(|n| ("DE", "49", n)),
            "7[0-9]{9}".prop_map(|n| ("GB", "44", n)),
        ],
        separator in prop::sample::select(vec!["", " ", "-", "."]),
    ) {
        let mut spaced = String::new();
        for (i, digit) in national.chars().enumerate() {
            if i > 0 && i % 2 == 0 {
                spaced.push_str(separator);
            }
            spaced.push(digit);
        }
        let national_form = canonicalize(Kind::Phone, None, Some(region), &format!("0{spaced}"));
        let international = canonicalize(Kind::Phone, None, None, &format!("+{code} {spaced}"));
        let idd = canonicalize(Kind::Phone, None, Some(region), &format!("00{code}{spaced}"));
        match national_form {
            Ok(canonical) => {
                prop_assert_eq!(canonical.value(), format!("+{code}{national}"));
                prop_assert_eq!(international.ok(), Some(canonical.clone()));
                prop_assert_eq!(idd.ok(), Some(canonical));
            }
            Err(error) => {
                prop_assert_eq!(international.map_err(|e| e.rule), Err(error.rule));
            }
        }
    }

    #[test]
    fn url_spellings_of_one_address_agree(
        host in "[a-z0-9]{1,10}\\.(com|org)",
        path in "(/[A-Za-z0-9_%.\\-]{0,8}){0,3}",
        query in "(\\?[A-Za-z0-9=&]{0,10})?",
        fragment in "(#[A-Za-z0-9]{0,5})?",
    ) {
        let plain = canonicalize(Kind::Url, None, None, &format!("https://{host}{path}{query}"))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let variant = format!(" HTTPS://{}.:443{path}{query}{fragment} ", host.to_uppercase());
        let other = canonicalize(Kind::Url, None, None, &variant)
            .map_err(|error| TestCaseError::fail(format!("{variant}: {error}")))?;
        prop_assert_eq!(other, plain);
    }

    #[test]
    fn domain_case_and_trailing_dot_do_not_matter(
        domain in "[A-Za-z0-9\\-ä]{1,20}(\\.[A-Za-z0-9]{1,10})?\\.[A-Za-z]{2,6}",
    ) {
        if let Ok(plain) = canonicalize(Kind::Domain, None, None, &domain) {
            let other = canonicalize(Kind::Domain, None, None, &format!(" {}. ", domain.to_uppercase()))
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(other, plain);
        }
    }
}

/// Found by the property above: `․` (one dot leader) folds to `.`, which the handle rule refuses,
/// so it must be refused before folding too, or its canonical form would not read back.
#[test]
fn dot_leaders_that_fold_to_path_steps_are_refused() {
    for handle in ["․", "‥", "@․", "．", "．．"] {
        for platform in ["vk.com", "youtube", "x", "instagram"] {
            let result = canonicalize(Kind::Account, Some(platform), None, handle);
            assert!(result.is_err(), "{handle:?} on {platform} gave {result:?}");
        }
    }
}
