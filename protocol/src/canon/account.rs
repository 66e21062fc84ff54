//! Accounts: platform names, profile URLs, and each platform's handle and id rules.

use std::borrow::Cow;

use url::{Host, Url};

use super::domain::canonical_domain;
use super::{Kind, Rule, text};

/// A platform as it appears in a canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Platform {
    /// x, formerly Twitter.
    X,
    Telegram,
    Facebook,
    Instagram,
    Youtube,
    Tiktok,
    /// Any other platform, named by its canonical domain with `www.`, `m.` or `mobile.` removed.
    Other(String),
}

impl Platform {
    /// The platform's name in canonical forms.
    pub(super) fn name(&self) -> &str {
        match self {
            Platform::X => "x",
            Platform::Telegram => "telegram",
            Platform::Facebook => "facebook",
            Platform::Instagram => "instagram",
            Platform::Youtube => "youtube",
            Platform::Tiktok => "tiktok",
            Platform::Other(domain) => domain,
        }
    }

    /// Reads a platform as the caller names it: a known name in any case (`twitter` is taken
    /// for `x`), or a domain name, which is mapped to a known platform when it is one of its
    /// hosts.
    pub(super) fn from_name(name: &str) -> Result<Self, Rule> {
        let name = name.trim();
        let known = [
            ("x", Platform::X),
            ("twitter", Platform::X),
            ("telegram", Platform::Telegram),
            ("facebook", Platform::Facebook),
            ("instagram", Platform::Instagram),
            ("youtube", Platform::Youtube),
            ("tiktok", Platform::Tiktok),
        ];
        if let Some((_, platform)) = known.into_iter().find(|(n, _)| name.eq_ignore_ascii_case(n)) {
            return Ok(platform);
        }
        let domain = canonical_domain(name).map_err(|_| Rule::PlatformUnknown)?;
        Ok(Self::from_host(&domain))
    }

    /// The platform a canonical host (ASCII, lower case, no trailing dot) belongs to.
    fn from_host(host: &str) -> Self {
        match strip_mobile_prefix(host) {
            "twitter.com" | "x.com" => Platform::X,
            "t.me" | "telegram.me" => Platform::Telegram,
            "facebook.com" | "fb.com" => Platform::Facebook,
            "instagram.com" => Platform::Instagram,
            "youtube.com" => Platform::Youtube,
            "tiktok.com" => Platform::Tiktok,
            other => Platform::Other(other.to_owned()),
        }
    }
}

/// An account resolved from an input: a handle (kind account) or an id (kind account_id).
#[derive(Debug)]
pub(super) struct Resolved<'a> {
    /// [`Kind::Account`] for a handle, [`Kind::AccountId`] for an id.
    pub(super) kind: Kind,
    pub(super) platform: Platform,
    /// The canonical handle or id.
    pub(super) value: Cow<'a, str>,
}

/// Canonicalises an account (`kind` is [`Kind::Account`] or [`Kind::AccountId`]) given as a
/// bare handle, `@handle`, bare id or profile URL. The input is already trimmed.
///
/// Kind account accepts URLs that carry an id (Facebook's `profile.php?id=N`) and resolves them
/// to an account_id; kind account_id refuses inputs that name a handle.
pub(super) fn canonical_account<'a>(
    kind: Kind,
    platform: Option<&str>,
    input: &'a str,
) -> Result<Resolved<'a>, Rule> {
    let given = platform.map(Platform::from_name).transpose()?;
    let resolved = if is_url_form(input)? {
        let url = ProfileUrl::parse(input)?;
        if given.as_ref().is_some_and(|given| *given != url.platform) {
            return Err(Rule::AccountUrlHost);
        }
        url.resolve()?
    } else {
        let platform = given.ok_or(Rule::PlatformMissing)?;
        match kind {
            Kind::AccountId => {
                Resolved { kind: Kind::AccountId, value: account_id(&platform, input)?, platform }
            }
            _ => {
                let bare = input.strip_prefix('@').unwrap_or(input);
                Resolved { kind: Kind::Account, value: handle(&platform, bare)?, platform }
            }
        }
    };
    if kind == Kind::AccountId && resolved.kind != Kind::AccountId {
        return Err(Rule::AccountIdForm);
    }
    Ok(resolved)
}

/// Whether the input is a profile URL (with or without scheme) rather than a bare handle or id.
/// Bare handles never contain `/`, so any `/` means a URL.
fn is_url_form(input: &str) -> Result<bool, Rule> {
    if has_http_scheme(input) {
        return Ok(true);
    }
    if input.contains("://") {
        return Err(Rule::AccountUrl);
    }
    if input.contains('/') {
        // A scheme-less URL starts with its host.
        if input.starts_with(|c: char| c.is_alphanumeric()) {
            return Ok(true);
        }
        return Err(Rule::AccountUrl);
    }
    Ok(false)
}

fn has_http_scheme(input: &str) -> bool {
    let starts = |prefix: &str| {
        input.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    starts("http://") || starts("https://")
}

/// `www.`, `m.` and `mobile.` are removed from a host once, unless that would leave a single
/// label (`m.me` stays `m.me`).
fn strip_mobile_prefix(host: &str) -> &str {
    for prefix in ["www.", "m.", "mobile."] {
        if let Some(rest) = host.strip_prefix(prefix)
            && rest.contains('.')
        {
            return rest;
        }
    }
    host
}

/// A parsed profile URL: its platform, percent-decoded path segments and `id` query parameter.
struct ProfileUrl {
    platform: Platform,
    segments: Vec<String>,
    query_id: Option<String>,
}

impl ProfileUrl {
    fn parse(input: &str) -> Result<Self, Rule> {
        let with_scheme: Cow<'_, str> = if has_http_scheme(input) {
            Cow::Borrowed(input)
        } else {
            Cow::Owned(format!("https://{input}"))
        };
        let url = Url::parse(&with_scheme).map_err(|_| Rule::AccountUrl)?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || url.port().is_some()
        {
            return Err(Rule::AccountUrl);
        }
        let Some(Host::Domain(host)) = url.host() else {
            return Err(Rule::AccountUrl);
        };
        let host = canonical_domain(host).map_err(|_| Rule::AccountUrl)?;
        let path = url.path();
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/')
                .map(text::percent_decode)
                .collect::<Option<Vec<_>>>()
                .ok_or(Rule::AccountUrlPath)?
        };
        let query_id =
            url.query_pairs().find(|(name, _)| name == "id").map(|(_, value)| value.into_owned());
        Ok(Self { platform: Platform::from_host(&host), segments, query_id })
    }

    /// Maps the path to a handle or id by the platform's profile paths.
    fn resolve(self) -> Result<Resolved<'static>, Rule> {
        let segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        let platform = &self.platform;
        let id = |value: &str| -> Result<(Kind, String), Rule> {
            Ok((Kind::AccountId, account_id(platform, value)?.into_owned()))
        };
        let handle = |value: &str| -> Result<(Kind, String), Rule> {
            Ok((Kind::Account, handle(platform, value)?.into_owned()))
        };
        let (kind, value) = match (platform, segments.as_slice()) {
            (Platform::X, ["i", "user", n]) => id(n)?,
            (Platform::Telegram, ["s", name]) => handle(name)?,
            (Platform::Facebook, ["profile.php"]) => {
                id(self.query_id.as_deref().ok_or(Rule::AccountUrlPath)?)?
            }
            (Platform::Facebook, ["people", _, n]) => id(n)?,
            (Platform::Facebook, [n]) if n.bytes().all(|b| b.is_ascii_digit()) => id(n)?,
            (Platform::Youtube, ["channel", channel]) => id(channel)?,
            (Platform::Youtube | Platform::Tiktok, [at_name]) => {
                handle(at_name.strip_prefix('@').ok_or(Rule::AccountUrlPath)?)?
            }
            (Platform::Other(_), [name]) => handle(name.strip_prefix('@').unwrap_or(name))?,
            (_, [name]) => handle(name)?,
            _ => return Err(Rule::AccountUrlPath),
        };
        Ok(Resolved { kind, platform: self.platform, value: Cow::Owned(value) })
    }
}

/// Checks and canonicalises a handle (without its `@`) by the platform's rule.
///
/// `.` and `..` are refused on every platform, before and after folding (`․` folds to `.`): in a
/// URL they are path steps, not names.
fn handle<'a>(platform: &Platform, name: &'a str) -> Result<Cow<'a, str>, Rule> {
    if name == "." || name == ".." {
        return Err(handle_rule(platform));
    }
    let ascii_handle = |rule, min, max, extra: &[u8]| {
        let ok = (min..=max).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
        if ok { Ok(ascii_lower(name)) } else { Err(rule) }
    };
    match platform {
        Platform::X => ascii_handle(Rule::XHandle, 1, 15, b"_"),
        Platform::Telegram => {
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return Err(Rule::TelegramHandle);
            }
            ascii_handle(Rule::TelegramHandle, 5, 32, b"_")
        }
        Platform::Instagram => ascii_handle(Rule::InstagramHandle, 1, 30, b"._"),
        Platform::Tiktok => ascii_handle(Rule::TiktokHandle, 2, 24, b"._"),
        Platform::Facebook => facebook_username(name),
        Platform::Youtube => {
            let folded = folded(name, Rule::YoutubeHandle)?;
            let n_chars = folded.chars().count();
            let ok = (3..=30).contains(&n_chars)
                && folded.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if ok { Ok(Cow::Owned(folded)) } else { Err(Rule::YoutubeHandle) }
        }
        Platform::Other(_) => {
            let folded = folded(name, Rule::Handle)?;
            let n_chars = folded.chars().count();
            let ok = (1..=100).contains(&n_chars)
                && folded != "."
                && folded != ".."
                && !folded.starts_with('@')
                && !folded.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || text::is_invisible_format(c) || c == '/'
                });
            if ok { Ok(Cow::Owned(folded)) } else { Err(Rule::Handle) }
        }
    }
}

/// The rule of the platform's handles.
fn handle_rule(platform: &Platform) -> Rule {
    match platform {
        Platform::X => Rule::XHandle,
        Platform::Telegram => Rule::TelegramHandle,
        Platform::Facebook => Rule::FacebookHandle,
        Platform::Instagram => Rule::InstagramHandle,
        Platform::Youtube => Rule::YoutubeHandle,
        Platform::Tiktok => Rule::TiktokHandle,
        Platform::Other(_) => Rule::Handle,
    }
}

/// Case-insensitive, dots ignored; letters and digits only otherwise; an all-digit name is an
/// id, not a username.
fn facebook_username(name: &str) -> Result<Cow<'_, str>, Rule> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
        return Err(Rule::FacebookHandle);
    }
    let username: String =
        name.bytes().filter(|&b| b != b'.').map(|b| char::from(b.to_ascii_lowercase())).collect();
    if !(1..=50).contains(&username.len()) || username.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rule::FacebookHandle);
    }
    Ok(Cow::Owned(username))
}

/// Checks an account id by the platform's rule: YouTube channel ids are `UC` and 22 base64url
/// characters (case-sensitive); every other platform's ids are decimal numbers.
fn account_id<'a>(platform: &Platform, id: &'a str) -> Result<Cow<'a, str>, Rule> {
    if *platform == Platform::Youtube {
        let ok = id.len() == 24
            && id.starts_with("UC")
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        return if ok { Ok(Cow::Borrowed(id)) } else { Err(Rule::YoutubeChannelId) };
    }
    let ok =
        !id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()) && id.parse::<u64>().is_ok();
    if ok { Ok(Cow::Borrowed(id)) } else { Err(Rule::AccountId) }
}

/// NFKC and case folding, refused unless the result is a fixed point of the folding.
fn folded(name: &str, rule: Rule) -> Result<String, Rule> {
    let folded = text::fold(name);
    if text::is_folded(&folded) { Ok(folded) } else { Err(rule) }
}

fn ascii_lower(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}
