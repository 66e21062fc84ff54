//! The named rules a refusal cites, and the error that carries the refused input apart from
//! the message text.

use std::fmt;

/// A canonicalisation rule an input broke. Each has a stable short code (used in test vectors
/// and safe to log) and a message that says what is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The input is empty or only white space.
    Empty,
    /// The input is longer than [`crate::MAX_INPUT_BYTES`].
    TooLong,
    /// A platform was given for a kind other than account and account_id.
    PlatformNotAllowed,
    /// A region was given for a kind other than phone.
    RegionNotAllowed,
    /// A bare account handle or id was given without a platform.
    PlatformMissing,
    /// The platform is neither a known platform nor a domain name.
    PlatformUnknown,
    /// The input looks like a URL but is not an acceptable profile URL.
    AccountUrl,
    /// The profile URL's host does not belong to the platform given.
    AccountUrlHost,
    /// The profile URL's path is not one of the platform's profile paths.
    AccountUrlPath,
    /// Kind `account_id` was asked for but the input names a handle.
    AccountIdForm,
    /// Not an x (Twitter) handle.
    XHandle,
    /// Not a Telegram username.
    TelegramHandle,
    /// Not a Facebook username.
    FacebookHandle,
    /// Not an Instagram username.
    InstagramHandle,
    /// Not a YouTube handle.
    YoutubeHandle,
    /// Not a TikTok username.
    TiktokHandle,
    /// Not a handle on a platform named by its domain.
    Handle,
    /// Not a decimal account id.
    AccountId,
    /// Not a YouTube channel id.
    YoutubeChannelId,
    /// Not `local@domain` with exactly one `@`.
    EmailSyntax,
    /// The e-mail local part is not an ASCII dot-atom.
    EmailLocal,
    /// The e-mail domain is not a valid domain name.
    EmailDomain,
    /// A national-format phone number was given without a default region.
    PhoneRegionMissing,
    /// The region is not an ISO 3166 alpha-2 code known to the phone metadata.
    PhoneRegion,
    /// The phone number holds characters other than digits, a leading `+` and separators.
    PhoneChars,
    /// The phone number cannot be parsed.
    PhoneSyntax,
    /// The phone number is not valid for its region.
    PhoneInvalid,
    /// The phone number carries an extension.
    PhoneExtension,
    /// The WHATWG URL parser refused the input, or it is not absolute.
    UrlSyntax,
    /// The URL's scheme is not http or https.
    UrlScheme,
    /// The URL carries a user name or password.
    UrlUserinfo,
    /// Not a domain name.
    Domain,
    /// A string offered as a canonical form is not one.
    CanonicalForm,
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: [Rule; 33] = [
        Rule::Empty,
        Rule::TooLong,
        Rule::PlatformNotAllowed,
        Rule::RegionNotAllowed,
        Rule::PlatformMissing,
        Rule::PlatformUnknown,
        Rule::AccountUrl,
        Rule::AccountUrlHost,
        Rule::AccountUrlPath,
        Rule::AccountIdForm,
        Rule::XHandle,
        Rule::TelegramHandle,
        Rule::FacebookHandle,
        Rule::InstagramHandle,
        Rule::YoutubeHandle,
        Rule::TiktokHandle,
        Rule::Handle,
        Rule::AccountId,
        Rule::YoutubeChannelId,
        Rule::EmailSyntax,
        Rule::EmailLocal,
        Rule::EmailDomain,
        Rule::PhoneRegionMissing,
        Rule::PhoneRegion,
        Rule::PhoneChars,
        Rule::PhoneSyntax,
        Rule::PhoneInvalid,
        Rule::PhoneExtension,
        Rule::UrlSyntax,
        Rule::UrlScheme,
        Rule::UrlUserinfo,
        Rule::Domain,
        Rule::CanonicalForm,
    ];

    /// The rule's stable short name, as used in test vectors and logs.
    pub const fn code(self) -> &'static str {
        match self {
            Rule::Empty => "empty",
            Rule::TooLong => "too-long",
            Rule::PlatformNotAllowed => "platform-not-allowed",
            Rule::RegionNotAllowed => "region-not-allowed",
            Rule::PlatformMissing => "platform-missing",
            Rule::PlatformUnknown => "platform-unknown",
            Rule::AccountUrl => "account-url",
            Rule::AccountUrlHost => "account-url-host",
            Rule::AccountUrlPath => "account-url-path",
            Rule::AccountIdForm => "account-id-form",
            Rule::XHandle => "x-handle",
            Rule::TelegramHandle => "telegram-handle",
            Rule::FacebookHandle => "facebook-handle",
            Rule::InstagramHandle => "instagram-handle",
            Rule::YoutubeHandle => "youtube-handle",
            Rule::TiktokHandle => "tiktok-handle",
            Rule::Handle => "handle",
            Rule::AccountId => "account-id",
            Rule::YoutubeChannelId => "youtube-channel-id",
            Rule::EmailSyntax => "email-syntax",
            Rule::EmailLocal => "email-local",
            Rule::EmailDomain => "email-domain",
            Rule::PhoneRegionMissing => "phone-region-missing",
            Rule::PhoneRegion => "phone-region",
            Rule::PhoneChars => "phone-chars",
            Rule::PhoneSyntax => "phone-syntax",
            Rule::PhoneInvalid => "phone-invalid",
            Rule::PhoneExtension => "phone-extension",
            Rule::UrlSyntax => "url-syntax",
            Rule::UrlScheme => "url-scheme",
            Rule::UrlUserinfo => "url-userinfo",
            Rule::Domain => "domain",
            Rule::CanonicalForm => "canonical-form",
        }
    }

    /// What the rule requires, in words: says what is accepted, never quotes the input.
    pub const fn message(self) -> &'static str {
        match self {
            Rule::Empty => "input is empty or only white space",
            Rule::TooLong => "input is longer than 4096 bytes",
            Rule::PlatformNotAllowed => "only kinds account and account_id take a platform",
            Rule::RegionNotAllowed => "only kind phone takes a region",
            Rule::PlatformMissing => {
                "a bare handle or id needs a platform (or give a profile URL, whose host names it)"
            }
            Rule::PlatformUnknown => {
                "platform must be x, telegram, facebook, instagram, youtube, tiktok or a domain name"
            }
            Rule::AccountUrl => {
                "a profile URL must be http or https, with no user name, password or non-default port"
            }
            Rule::AccountUrlHost => "the profile URL's host does not belong to the platform given",
            Rule::AccountUrlPath => {
                "a profile URL's path must be /HANDLE (youtube and tiktok /@HANDLE; telegram also \
                 /s/HANDLE; x /i/user/ID; facebook /profile.php?id=ID, /people/NAME/ID or /ID; \
                 youtube /channel/ID), with an optional trailing slash"
            }
            Rule::AccountIdForm => {
                "kind account_id needs an id or a URL that carries one; this names a handle \
                 (use kind account)"
            }
            Rule::XHandle => "x handle must be 1-15 of A-Z a-z 0-9 _",
            Rule::TelegramHandle => {
                "telegram username must be a letter followed by 4-31 of A-Z a-z 0-9 _"
            }
            Rule::FacebookHandle => {
                "facebook username must be A-Z a-z 0-9 and dots, with 1-50 letters or digits, \
                 not all digits (a numeric id is an account_id)"
            }
            Rule::InstagramHandle => {
                "instagram username must be 1-30 of A-Z a-z 0-9 . _ (not . or .. alone)"
            }
            Rule::YoutubeHandle => {
                "youtube handle must be 3-30 of letters, digits, . _ - (after NFKC and case folding)"
            }
            Rule::TiktokHandle => "tiktok username must be 2-24 of A-Z a-z 0-9 . _ (not .. alone)",
            Rule::Handle => {
                "handle must be 1-100 characters after NFKC and case folding, with no white \
                 space, control or invisible formatting characters, not . or .., no leading @ and no /"
            }
            Rule::AccountId => {
                "account id must be a decimal number from 1 to 18446744073709551615 with no \
                 leading zero"
            }
            Rule::YoutubeChannelId => {
                "youtube channel id must be UC followed by 22 of A-Z a-z 0-9 _ -"
            }
            Rule::EmailSyntax => {
                "e-mail address must be LOCAL@DOMAIN with exactly one @, at most 254 bytes"
            }
            Rule::EmailLocal => {
                "e-mail local part must be 1-64 of ASCII letters, digits and \
                 ! # $ % & ' * + - / = ? ^ _ ` { | } ~ with single dots between them \
                 (quoted and non-ASCII local parts are not accepted in v1)"
            }
            Rule::EmailDomain => {
                "e-mail domain must be a domain name (see rule domain); IP literals are not \
                 accepted"
            }
            Rule::PhoneRegionMissing => {
                "a number not starting with + needs a default region (ISO 3166 alpha-2, e.g. FR)"
            }
            Rule::PhoneRegion => {
                "region must be an ISO 3166 alpha-2 code known to the phone number metadata"
            }
            Rule::PhoneChars => {
                "phone number must be digits, an optional leading +, and separators \
                 space - . ( ) /"
            }
            Rule::PhoneSyntax => "phone number cannot be parsed",
            Rule::PhoneInvalid => {
                "phone number is not a valid number for its country in the phone number metadata"
            }
            Rule::PhoneExtension => "phone numbers with an extension are not accepted",
            Rule::UrlSyntax => {
                "a URL must be absolute (starting with http:// or https://) and parse under the \
                 WHATWG URL standard"
            }
            Rule::UrlScheme => "a URL's scheme must be http or https",
            Rule::UrlUserinfo => "a URL must not carry a user name or password",
            Rule::Domain => {
                "domain must be a host name valid under UTS 46 with the URL standard's forbidden \
                 characters, at least two labels of 1-63 bytes, at most 253 bytes, a top-level \
                 label starting with a letter (no IP addresses), and no scheme, path or port"
            }
            Rule::CanonicalForm => "not a canonical form: it does not canonicalise to itself",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A refused input: the rule it broke, and the raw input kept apart from the message.
///
/// `Display` shows the rule's message and code, never the input, so it can be logged. `Debug`
/// also hides the input (it shows only its length); read [`CanonError::input`] deliberately
/// where showing it is intended, such as to the operator who typed it.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule} (rule {code})", code = rule.code())]
pub struct CanonError {
    /// The rule the input broke.
    pub rule: Rule,
    /// The input exactly as given. Sensitive: never log it.
    pub input: String,
}

impl CanonError {
    pub(crate) fn new(rule: Rule, input: &str) -> Self {
        Self { rule, input: input.to_owned() }
    }
}

impl fmt::Debug for CanonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanonError")
            .field("rule", &self.rule)
            .field("input_len", &self.input.len())
            .finish_non_exhaustive()
    }
}
