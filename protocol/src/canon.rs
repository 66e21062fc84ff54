//! Canonical identifiers: the rules that turn what an investigator typed into the exact bytes
//! every member tokenises. Normative text: `docs/PROTOCOL.md` §1.
//!
//! A canonical form is `v1|<kind>|<platform>|<value>` for accounts and account ids and
//! `v1|<kind>|<value>` for every other kind. Two members match an identifier only if both
//! produce the same canonical form, so each rule here is strict: what is not clearly one
//! identifier is refused, with a [`Rule`] saying what is accepted.

mod account;
mod domain;
mod email;
mod phone;
mod rule;
mod text;
mod web;

use std::fmt;
use std::str::FromStr;

pub use rule::{CanonError, Rule};

/// Longest input accepted, in bytes, before trimming. Far above any real identifier (URLs
/// are the longest, and browsers and servers commonly stop near 2-8 KiB); it bounds the work
/// one input can cause.
pub const MAX_INPUT_BYTES: usize = 4096;

/// The version prefix of every canonical form; changes whenever any rule changes.
pub const CANONICAL_VERSION: &str = "v1";

/// What an identifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An account on a platform, by handle (or by id when the input carries one).
    Account,
    /// An account on a platform, by its permanent id (ids survive renames).
    AccountId,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// An http or https URL.
    Url,
    /// A domain name.
    Domain,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] =
        [Kind::Account, Kind::AccountId, Kind::Email, Kind::Phone, Kind::Url, Kind::Domain];

    /// The kind's name in canonical forms and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::AccountId => "account_id",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Url => "url",
            Kind::Domain => "domain",
        }
    }

    /// The kind's code in an `add` entry (docs/PROTOCOL.md §2.2). Written out, never reused.
    pub const fn code(self) -> u64 {
        match self {
            Kind::Account => 1,
            Kind::AccountId => 2,
            Kind::Email => 3,
            Kind::Phone => 4,
            Kind::Url => 5,
            Kind::Domain => 6,
        }
    }

    /// The kind for an entry code, if this version knows it.
    pub fn from_code(code: u64) -> Option<Self> {
        Kind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// Whether canonical forms of this kind name a platform.
    pub const fn has_platform(self) -> bool {
        matches!(self, Kind::Account | Kind::AccountId)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an unknown [`Kind`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kind must be one of account, account_id, email, phone, url, domain")]
pub struct UnknownKind;

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or(UnknownKind)
    }
}

/// A canonical form, such as `v1|account|x|jihadi_john`. Only [`canonicalize`] (or parsing a
/// string that canonicalises to itself) makes one, so holding one means the rules were applied.
///
/// `Display` and [`Canonical::as_str`] give the form itself, which holds the raw identifier;
/// `Debug` shows only the kind and platform.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Canonical {
    text: String,
    kind: Kind,
    value_start: usize,
}

impl Canonical {
    /// The canonical form: the exact UTF-8 bytes that are tokenised.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The kind, which for kind account may have become [`Kind::AccountId`] (Facebook's
    /// `profile.php?id=N`, x's `/i/user/N`).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The platform, for accounts and account ids.
    pub fn platform(&self) -> Option<&str> {
        let platform_start = CANONICAL_VERSION.len() + 1 + self.kind.as_str().len() + 1;
        self.kind.has_platform().then(|| &self.text[platform_start..self.value_start - 1])
    }

    /// The value after the last prefix field: handle, id, address, number, URL or domain.
    pub fn value(&self) -> &str {
        &self.text[self.value_start..]
    }

    /// The canonical form as an owned string.
    pub fn into_string(self) -> String {
        self.text
    }

    fn build(kind: Kind, platform: Option<&str>, value: &str) -> Self {
        let kind_name = kind.as_str();
        let platform_len = platform.map_or(0, |platform| platform.len() + 1);
        let len = CANONICAL_VERSION.len() + 1 + kind_name.len() + 1 + platform_len + value.len();
        let mut text = String::with_capacity(len);
        text.push_str(CANONICAL_VERSION);
        text.push('|');
        text.push_str(kind_name);
        text.push('|');
        if let Some(platform) = platform {
            text.push_str(platform);
            text.push('|');
        }
        let value_start = text.len();
        text.push_str(value);
        Self { text, kind, value_start }
    }
}

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canonical")
            .field("kind", &self.kind)
            .field("platform", &self.platform())
            .finish_non_exhaustive()
    }
}

/// Parses a string that is already a canonical form: it is accepted only if canonicalising its
/// value again (with its kind and platform, and no region) gives it back unchanged.
impl FromStr for Canonical {
    type Err = CanonError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = || CanonError::new(Rule::CanonicalForm, s);
        let rest = s.strip_prefix(CANONICAL_VERSION).and_then(|rest| rest.strip_prefix('|'));
        let (kind, rest) = rest.and_then(|rest| rest.split_once('|')).ok_or_else(refuse)?;
        let kind: Kind = kind.parse().map_err(|_| refuse())?;
        let (platform, value) = if kind.has_platform() {
            let (platform, value) = rest.split_once('|').ok_or_else(refuse)?;
            (Some(platform), value)
        } else {
            (None, rest)
        };
        match canonicalize(kind, platform, None, value) {
            Ok(canonical) if canonical.text == s => Ok(canonical),
            _ => Err(refuse()),
        }
    }
}

/// Canonicalises one identifier of `kind`.
///
/// `platform` is required for bare handles and ids of kinds account and account_id and
/// refused for the other kinds; a profile URL's host names its platform, so with a URL it may
/// be omitted (if given, it must agree). `region` is the default region (ISO 3166 alpha-2)
/// for national-format phone numbers and refused for the other kinds. Surrounding white space
/// is ignored. The error keeps `input` apart from its message.
pub fn canonicalize(
    kind: Kind,
    platform: Option<&str>,
    region: Option<&str>,
    input: &str,
) -> Result<Canonical, CanonError> {
    canonicalize_rule(kind, platform, region, input).map_err(|rule| CanonError::new(rule, input))
}

fn canonicalize_rule(
    kind: Kind,
    platform: Option<&str>,
    region: Option<&str>,
    input: &str,
) -> Result<Canonical, Rule> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(Rule::TooLong);
    }
    if platform.is_some() && !kind.has_platform() {
        return Err(Rule::PlatformNotAllowed);
    }
    if region.is_some() && kind != Kind::Phone {
        return Err(Rule::RegionNotAllowed);
    }
    let input = input.trim();
    if input.is_empty() {
        return Err(Rule::Empty);
    }
    Ok(match kind {
        Kind::Account | Kind::AccountId => {
            let account = account::canonical_account(kind, platform, input)?;
            Canonical::build(account.kind, Some(account.platform.name()), &account.value)
        }
        Kind::Email => Canonical::build(kind, None, &email::canonical_email(input)?),
        Kind::Phone => Canonical::build(kind, None, &phone::canonical_phone(input, region)?),
        Kind::Url => Canonical::build(kind, None, &web::canonical_url(input)?),
        Kind::Domain => Canonical::build(kind, None, &domain::canonical_domain(input)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(platform: Option<&str>, input: &str) -> Result<String, Rule> {
        canonicalize(Kind::Account, platform, None, input)
            .map(Canonical::into_string)
            .map_err(|error| error.rule)
    }

    #[test]
    fn kind_codes_round_trip_and_are_distinct() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(Kind::from_code(0), None);
        assert_eq!(Kind::from_code(7), None);
    }

    #[test]
    fn rule_codes_are_unique_and_messages_never_end_with_a_period() {
        let mut codes: Vec<_> = Rule::ALL.iter().map(|rule| rule.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Rule::ALL.len());
        for rule in Rule::ALL {
            assert!(!rule.message().ends_with('.'), "{rule:?}");
            assert!(rule.message().starts_with(|c: char| !c.is_uppercase()), "{rule:?}");
        }
        assert!(Rule::TooLong.message().contains(&MAX_INPUT_BYTES.to_string()));
    }

    #[test]
    fn errors_keep_the_input_out_of_display_and_debug() {
        let error = canonicalize(Kind::Account, Some("x"), None, "secret.person").unwrap_err();
        assert_eq!(error.rule, Rule::XHandle);
        assert_eq!(error.input, "secret.person");
        assert_eq!(error.to_string(), "x handle must be 1-15 of A-Z a-z 0-9 _ (rule x-handle)");
        assert!(!format!("{error:?}").contains("secret"));
    }

    #[test]
    fn canonical_parts_are_exposed() {
        let canonical = canonicalize(Kind::Account, Some("X"), None, "@Jihadi_John").unwrap();
        assert_eq!(canonical.as_str(), "v1|account|x|jihadi_john");
        assert_eq!(canonical.kind(), Kind::Account);
        assert_eq!(canonical.platform(), Some("x"));
        assert_eq!(canonical.value(), "jihadi_john");
        assert!(!format!("{canonical:?}").contains("jihadi"));
        let email = canonicalize(Kind::Email, None, None, " A@Example.com ").unwrap();
        assert_eq!(email.platform(), None);
        assert_eq!(email.value(), "a@example.com");
    }

    #[test]
    fn canonical_strings_parse_only_when_they_are_fixed_points() {
        for text in [
            "v1|account|x|jack",
            "v1|account_id|facebook|4",
            "v1|phone|+33142685300",
            "v1|url|https://example.com/",
            "v1|account|vk.com|дуров",
        ] {
            assert_eq!(text.parse::<Canonical>().map(Canonical::into_string).as_deref(), Ok(text));
        }
        for text in [
            "v1|account|x|Jack",
            "v1|account|twitter|jack",
            "v2|account|x|jack",
            "v1|phone|0142685300",
            "v1|url|https://example.com",
            "v1|account|x",
        ] {
            assert_eq!(text.parse::<Canonical>().unwrap_err().rule, Rule::CanonicalForm, "{text}");
        }
    }

    #[test]
    fn profile_urls_and_bare_handles_agree() {
        for input in [
            "jihadi_john",
            "@Jihadi_John",
            "  jihadi_john\n",
            "https://twitter.com/jihadi_john",
            "http://www.twitter.com/Jihadi_John/",
            "mobile.twitter.com/jihadi_john?lang=en#top",
            "https://x.com/jihadi_john",
            "HTTPS://X.COM/jihadi_john",
        ] {
            assert_eq!(account(Some("x"), input).as_deref(), Ok("v1|account|x|jihadi_john"));
        }
        assert_eq!(account(None, "x.com/jihadi_john").as_deref(), Ok("v1|account|x|jihadi_john"));
        assert_eq!(account(Some("twitter.com"), "jack").as_deref(), Ok("v1|account|x|jack"));
    }

    #[test]
    fn platform_specific_paths_resolve() {
        let cases = [
            (
                Some("facebook"),
                "https://www.facebook.com/profile.php?id=100004",
                "v1|account_id|facebook|100004",
            ),
            (None, "m.facebook.com/people/Some-Name/100004/", "v1|account_id|facebook|100004"),
            (None, "fb.com/Mark.Zuckerberg", "v1|account|facebook|markzuckerberg"),
            (None, "https://x.com/i/user/783214", "v1|account_id|x|783214"),
            (None, "t.me/s/Durov_Channel", "v1|account|telegram|durov_channel"),
            (None, "youtube.com/@MrBeast", "v1|account|youtube|mrbeast"),
            (
                None,
                "youtube.com/channel/UCX6OQ3DkcsbYNE6H8uQQuVA",
                "v1|account_id|youtube|UCX6OQ3DkcsbYNE6H8uQQuVA",
            ),
            (None, "https://www.tiktok.com/@some.user?lang=en", "v1|account|tiktok|some.user"),
            (None, "https://vk.com/Durov", "v1|account|vk.com|durov"),
            (None, "https://mastodon.social/@Gargron", "v1|account|mastodon.social|gargron"),
            (Some("m.me"), "someone", "v1|account|m.me|someone"),
        ];
        for (platform, input, expected) in cases {
            assert_eq!(account(platform, input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn account_refusals_name_the_rule() {
        let cases = [
            (None, "jack", Rule::PlatformMissing),
            (Some("myspace"), "jack", Rule::PlatformUnknown),
            (Some("telegram"), "https://x.com/jack", Rule::AccountUrlHost),
            (None, "https://x.com/jack/status/1", Rule::AccountUrlPath),
            (None, "https://x.com/", Rule::AccountUrlPath),
            (None, "youtube.com/user/legacy", Rule::AccountUrlPath),
            (None, "youtube.com/MrBeast", Rule::AccountUrlPath),
            (None, "ftp://x.com/jack", Rule::AccountUrl),
            (None, "https://x.com:8443/jack", Rule::AccountUrl),
            (None, "https://user@x.com/jack", Rule::AccountUrl),
            (None, "@x.com/jack", Rule::AccountUrl),
            (Some("x"), "a_very_long_handle_indeed", Rule::XHandle),
            (Some("telegram"), "1durov", Rule::TelegramHandle),
            (Some("telegram"), "dur", Rule::TelegramHandle),
            (Some("facebook"), "100004", Rule::FacebookHandle),
            (Some("instagram"), "in-sta", Rule::InstagramHandle),
            (Some("youtube"), "ab", Rule::YoutubeHandle),
            (Some("tiktok"), "a", Rule::TiktokHandle),
            (Some("vk.com"), "two words", Rule::Handle),
            (Some("vk.com"), "@@twice", Rule::Handle),
            (Some("vk.com"), "zero\u{200B}width", Rule::Handle),
        ];
        for (platform, input, rule) in cases {
            assert_eq!(account(platform, input), Err(rule), "{input}");
        }
    }

    #[test]
    fn account_ids_are_decimal_except_youtube_channels() {
        let id = |platform, input| {
            canonicalize(Kind::AccountId, Some(platform), None, input)
                .map(Canonical::into_string)
                .map_err(|error| error.rule)
        };
        assert_eq!(id("telegram", "136817688").as_deref(), Ok("v1|account_id|telegram|136817688"));
        assert_eq!(id("x", "007"), Err(Rule::AccountId));
        assert_eq!(id("x", "18446744073709551616"), Err(Rule::AccountId));
        assert_eq!(id("x", "-100123"), Err(Rule::AccountId));
        assert_eq!(
            id("youtube", "UCx6oq3dkcsbyne6h8uqquva").as_deref(),
            Ok("v1|account_id|youtube|UCx6oq3dkcsbyne6h8uqquva")
        );
        assert_eq!(id("youtube", "UC123"), Err(Rule::YoutubeChannelId));
        assert_eq!(id("x", "https://x.com/jack"), Err(Rule::AccountIdForm));
        assert_eq!(id("x", "x.com/i/user/12").as_deref(), Ok("v1|account_id|x|12"));
    }

    #[test]
    fn general_rules_come_first() {
        let long = "a".repeat(MAX_INPUT_BYTES + 1);
        assert_eq!(canonicalize(Kind::Domain, None, None, &long).unwrap_err().rule, Rule::TooLong);
        assert_eq!(canonicalize(Kind::Domain, None, None, " \t ").unwrap_err().rule, Rule::Empty);
        assert_eq!(
            canonicalize(Kind::Email, Some("x"), None, "a@example.com").unwrap_err().rule,
            Rule::PlatformNotAllowed
        );
        assert_eq!(
            canonicalize(Kind::Email, None, Some("FR"), "a@example.com").unwrap_err().rule,
            Rule::RegionNotAllowed
        );
    }
}
