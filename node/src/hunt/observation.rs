//! Observation lines: one JSON object per line, a post or a follow snapshot, parsed and
//! canonicalised. Pure: the caller passes the line number and the current time.
//!
//! A post: `{"platform":"x","account":"@handle","account_id":"123","at":"2015-06-01T10:00:00Z",
//! "post_id":"…","repost_of":"@author","reply_to":"@other","mentions":["@a"],"urls":["https://…"],
//! "lang":"ar"}`. A follow snapshot: `{"platform":"x","account":"@a","at":…,"follows":["@b"]}`.
//! Required: `platform`, `account`, `at` (RFC 3339, or Unix milliseconds as a JSON integer)
//! and, for a post, `post_id` (a string or an integer). Unknown fields are ignored.
//!
//! Accounts are canonicalised by the protocol's own rules ([`Kind::Account`], and
//! [`Kind::AccountId`] for `account_id`), so a handle and a profile URL of one account give one
//! canonical form. A reference that cannot be canonicalised (a mention, a follow, `repost_of`,
//! `reply_to`, a URL, `account_id`, `lang`) is dropped and counted; the rest of the line is kept.
//! A line that lacks a required field, or whose time is in the future, is refused with its line
//! number and the rule it broke. Neither the line nor any identifier is ever part of a refusal.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use crossmatch_protocol::{Canonical, Kind, canonicalize};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The longest observation line read, in bytes. A post with its mentions and URLs is far
/// shorter; a follow snapshot of [`MAX_FOLLOWS`] handles fits.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// The most follows kept from one snapshot; the rest are dropped and counted.
pub const MAX_FOLLOWS: usize = 5_000;

/// The most mentions or URLs kept from one post; the rest are dropped and counted.
pub const MAX_REFERENCES: usize = 64;

/// The longest `lang` tag kept (BCP 47 tags in practice are 2 to 10 characters).
const MAX_LANG_BYTES: usize = 16;

/// The BLAKE3 context of post-id hashes ([`PostHash`]).
pub const POST_HASH_CONTEXT: &str = "crossmatch observation post id v1";

/// A post id as kept: the first 8 bytes of `BLAKE3-derive_key(POST_HASH_CONTEXT, platform
/// || 0x00 || post id)`. Plain (unkeyed) BLAKE3 on purpose: a post id is public on its platform
/// and never leaves the node, so the hash protects no secret; it only makes the seen-post set
/// compact (8 bytes a post) and lets a day's ids be purged. A key would add nothing but a
/// secret to keep across restarts for de-duplication to hold. With 3 M posts in a 30-day
/// window, the chance of any collision is about 2.4 × 10⁻⁷; a collision drops one post.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostHash(pub u64);

impl PostHash {
    /// The hash of one platform's post id. `platform` is the canonical platform name.
    pub fn of(platform: &str, post_id: &str) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(POST_HASH_CONTEXT);
        hasher.update(platform.as_bytes());
        hasher.update(&[0]);
        hasher.update(post_id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        Self(u64::from_be_bytes(first))
    }
}

impl fmt::Debug for PostHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostHash({:08x}…)", self.0 >> 32)
    }
}

/// What one line says.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A post.
    Post(Post),
    /// A follow snapshot: whom an account followed at a time.
    Follows(FollowSnapshot),
}

/// The account a line is about: its canonical handle (or id, when the account was given as a
/// profile URL that carries an id) and, when the line gives one, its canonical id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// The canonical form of `account` ([`Kind::Account`], or [`Kind::AccountId`] for an id
    /// URL).
    pub account: Canonical,
    /// The canonical form of `account_id` ([`Kind::AccountId`]).
    pub account_id: Option<Canonical>,
}

/// A post, canonicalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// Who posted it.
    pub author: Author,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// The post id's hash (what de-duplicates and is purged).
    pub post_hash: PostHash,
    /// The post id as the platform gives it: kept only as bounded evidence.
    pub post_id: String,
    /// The original author, for a repost.
    pub repost_of: Option<Canonical>,
    /// The account replied to.
    pub reply_to: Option<Canonical>,
    /// Distinct accounts mentioned, in order, without the author (at most the first
    /// [`MAX_REFERENCES`]).
    pub mentions: Vec<Canonical>,
    /// How many distinct valid accounts the post mentioned before that cut: one post's mention
    /// weight is split over all of them, so a mass-mention post gives each mention 1/k.
    pub mentioned: u32,
    /// Canonical URLs ([`Kind::Url`]).
    pub urls: Vec<String>,
    /// The language tag, lower case.
    pub lang: Option<String>,
}

/// What a post is, for counting: a repost, else a reply, else an original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    /// Neither a repost nor a reply.
    Original,
    /// Has `repost_of`.
    Repost,
    /// Has `reply_to` and no `repost_of`.
    Reply,
}

impl Post {
    /// What the post is.
    pub fn kind(&self) -> PostKind {
        match (&self.repost_of, &self.reply_to) {
            (Some(_), _) => PostKind::Repost,
            (None, Some(_)) => PostKind::Reply,
            (None, None) => PostKind::Original,
        }
    }
}

/// A follow snapshot, canonicalised.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowSnapshot {
    /// Whose follows these are.
    pub author: Author,
    /// When the snapshot was taken, in Unix milliseconds.
    pub at_ms: u64,
    /// The distinct accounts followed, without the author.
    pub follows: Vec<Canonical>,
}

/// A parsed line and how many of its references were dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The observation.
    pub observation: Observation,
    /// References dropped because they were not valid (or past a limit).
    pub dropped_references: u32,
}

/// Why a line was refused. Messages name the rule, never the line's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineRule {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("the line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    /// Not a JSON object (or a field of a known name appears twice).
    #[error("the line is not one JSON object")]
    NotAnObject,
    /// `platform` is missing, not a string or not a platform.
    #[error("the required field `platform` is missing or not a platform")]
    Platform,
    /// `account` is missing or not an account of the platform.
    #[error("the required field `account` is missing or not an account of the platform")]
    Account,
    /// `at` is missing, or neither RFC 3339 nor non-negative Unix milliseconds.
    #[error("the required field `at` is missing or neither RFC 3339 nor Unix milliseconds")]
    At,
    /// `at` is later than the current time (plus the tolerance).
    #[error("the time `at` is in the future")]
    Future,
    /// A post without `post_id` (a string or an integer, not empty).
    #[error("the required field `post_id` is missing or empty")]
    PostId,
}

/// A refused line: its number (from 1) and the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {rule}")]
pub struct Refusal {
    /// The line number, from 1.
    pub line: u64,
    /// The rule the line broke.
    pub rule: LineRule,
}

/// Parses one line. `line` is its number (from 1), for the refusal. A time later than
/// `now_ms + future_tolerance_ms` is refused.
pub fn parse_line(
    text: &str,
    line: u64,
    now_ms: u64,
    future_tolerance_ms: u64,
) -> Result<Parsed, Refusal> {
    let refuse = |rule| Refusal { line, rule };
    if text.len() > MAX_LINE_BYTES {
        return Err(refuse(LineRule::TooLong));
    }
    if !text.trim_start().starts_with('{') {
        return Err(refuse(LineRule::NotAnObject));
    }
    let raw: RawLine<'_> = serde_json::from_str(text).map_err(|_| refuse(LineRule::NotAnObject))?;
    let mut dropped = 0u32;
    let platform_input =
        raw.platform.as_ref().and_then(Scalar::text).ok_or(refuse(LineRule::Platform))?;
    let account_input =
        raw.account.as_ref().and_then(Scalar::text).ok_or(refuse(LineRule::Account))?;
    let account = canonicalize(Kind::Account, Some(platform_input), None, account_input)
        .map_err(|_| refuse(LineRule::Account))?;
    // The canonical platform name, as the account's canonical form spells it.
    let platform = account.platform().unwrap_or_default().to_owned();
    let at_ms = raw.at.as_ref().and_then(Scalar::time_ms).ok_or(refuse(LineRule::At))?;
    if at_ms > now_ms.saturating_add(future_tolerance_ms) {
        return Err(refuse(LineRule::Future));
    }
    let account_id = match raw.account_id.as_ref() {
        None | Some(Scalar::Null) => None,
        Some(scalar) => {
            let id = scalar
                .id_text()
                .and_then(|id| canonicalize(Kind::AccountId, Some(&platform), None, &id).ok());
            dropped += u32::from(id.is_none());
            id
        }
    };
    let author = Author { account, account_id };
    let mut reference = |input: &Scalar<'_>| -> Option<Canonical> {
        let canonical = input
            .text()
            .and_then(|text| canonicalize(Kind::Account, Some(&platform), None, text).ok());
        dropped += u32::from(canonical.is_none());
        canonical
    };
    if let Some(follows) = raw.follows {
        let mut kept: Vec<Canonical> = Vec::new();
        let mut seen: HashSet<Canonical> = HashSet::new();
        for input in follows.items() {
            if let Some(canonical) = reference(input)
                && canonical != author.account
                && seen.insert(canonical.clone())
            {
                kept.push(canonical);
            }
        }
        dropped += follows.past_limit(MAX_FOLLOWS, &mut kept);
        let observation = Observation::Follows(FollowSnapshot { author, at_ms, follows: kept });
        return Ok(Parsed { observation, dropped_references: dropped });
    }
    let post_id = raw
        .post_id
        .as_ref()
        .and_then(Scalar::id_text)
        .filter(|id| !id.trim().is_empty())
        .ok_or(refuse(LineRule::PostId))?
        .into_owned();
    let repost_of = raw.repost_of.as_ref().filter(|s| !s.is_null()).and_then(&mut reference);
    let reply_to = raw.reply_to.as_ref().filter(|s| !s.is_null()).and_then(&mut reference);
    let mut mentions: Vec<Canonical> = Vec::new();
    let mut mentioned = 0u32;
    if let Some(list) = &raw.mentions {
        let mut seen: HashSet<Canonical> = HashSet::new();
        for input in list.items() {
            if let Some(canonical) = reference(input)
                && canonical != author.account
                && seen.insert(canonical.clone())
            {
                mentions.push(canonical);
            }
        }
        mentioned = u32::try_from(mentions.len()).unwrap_or(u32::MAX);
        dropped += list.past_limit(MAX_REFERENCES, &mut mentions);
    }
    let mut urls: Vec<String> = Vec::new();
    if let Some(list) = &raw.urls {
        for input in list.items() {
            match input.text().and_then(|text| canonicalize(Kind::Url, None, None, text).ok()) {
                Some(url) => urls.push(url.value().to_owned()),
                None => dropped += 1,
            }
        }
        dropped += list.past_limit(MAX_REFERENCES, &mut urls);
    }
    let lang = match raw.lang.as_ref() {
        None | Some(Scalar::Null) => None,
        Some(scalar) => {
            let lang = scalar.text().map(str::trim).filter(|lang| {
                !lang.is_empty()
                    && lang.len() <= MAX_LANG_BYTES
                    && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            dropped += u32::from(lang.is_none());
            lang.map(str::to_ascii_lowercase)
        }
    };
    let post_hash = PostHash::of(&platform, &post_id);
    let post = Post {
        author,
        at_ms,
        post_hash,
        post_id,
        repost_of,
        reply_to,
        mentions,
        mentioned,
        urls,
        lang,
    };
    Ok(Parsed { observation: Observation::Post(post), dropped_references: dropped })
}

/// A line as read: every field lenient, so that a field of the wrong type is judged by the
/// rules above instead of failing the whole line.
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow, default)]
    platform: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    account: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    account_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    at: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    post_id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    repost_of: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    reply_to: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    mentions: Option<List<'a>>,
    #[serde(borrow, default)]
    urls: Option<List<'a>>,
    #[serde(borrow, default)]
    lang: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    follows: Option<List<'a>>,
}

/// Any JSON value, kept only when it is a string or an integer.
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Unsigned(u64),
    Null,
    Other,
}

impl Scalar<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            Scalar::Text(text) => Some(text),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// An id: a string, or a non-negative integer in decimal.
    fn id_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Scalar::Text(text) => Some(Cow::Borrowed(text)),
            Scalar::Unsigned(number) => Some(Cow::Owned(number.to_string())),
            _ => None,
        }
    }

    /// A time: RFC 3339 text, or Unix milliseconds as an integer.
    fn time_ms(&self) -> Option<u64> {
        match self {
            Scalar::Unsigned(ms) => Some(*ms),
            Scalar::Text(text) => {
                let parsed = time::OffsetDateTime::parse(
                    text.trim(),
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()?;
                u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
            }
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(value)))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(value.to_owned())))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Unsigned(value))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(value).map_or(Scalar::Other, Scalar::Unsigned))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

/// A JSON array of scalars; any other value is an empty list with one bad reference.
struct List<'a> {
    items: Vec<Scalar<'a>>,
    not_a_list: bool,
}

impl List<'_> {
    fn items(&self) -> impl Iterator<Item = &Scalar<'_>> {
        self.items.iter()
    }

    /// Cuts `kept` to `limit`; returns how many references were dropped by the cut, plus one
    /// when the value was not a list at all.
    fn past_limit<T>(&self, limit: usize, kept: &mut Vec<T>) -> u32 {
        let cut = kept.len().saturating_sub(limit);
        kept.truncate(limit);
        u32::try_from(cut).unwrap_or(u32::MAX).saturating_add(u32::from(self.not_a_list))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for List<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = List<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Scalar<'de>>()? {
                    items.push(item);
                }
                Ok(List { items, not_a_list: false })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(List { items: Vec::new(), not_a_list: false })
            }
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(List { items: Vec::new(), not_a_list: true })
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(List { items: Vec::new(), not_a_list: true })
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(List { items: Vec::new(), not_a_list: true })
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(List { items: Vec::new(), not_a_list: true })
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(List { items: Vec::new(), not_a_list: true })
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(List { items: Vec::new(), not_a_list: true })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(List { items: Vec::new(), not_a_list: true })
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn parse(text: &str) -> Result<Parsed, Refusal> {
        parse_line(text, 7, NOW, 0)
    }

    fn post(text: &str) -> (Post, u32) {
        match parse(text) {
            Ok(Parsed { observation: Observation::Post(post), dropped_references }) => {
                (post, dropped_references)
            }
            other => panic!("not a post: {other:?}"),
        }
    }

    #[test]
    fn a_full_post_is_canonicalised_and_unknown_fields_are_ignored() {
        let (post, dropped) = post(
            r#"{"platform":"twitter","account":"@Abu_X","account_id":123,"at":"2015-06-01T10:00:00Z",
            "post_id":"99","repost_of":"https://x.com/Author","mentions":["@a","@A","@abu_x","@b"],
            "urls":["HTTPS://Example.com/a"],"lang":"AR","extra":{"nested":[1,2]}}"#,
        );
        assert_eq!(dropped, 0);
        assert_eq!(post.author.account.as_str(), "v1|account|x|abu_x");
        assert_eq!(
            post.author.account_id.as_ref().map(Canonical::as_str),
            Some("v1|account_id|x|123")
        );
        assert_eq!(post.at_ms, 1_433_152_800_000);
        assert_eq!(post.repost_of.as_ref().map(Canonical::as_str), Some("v1|account|x|author"));
        assert_eq!(post.kind(), PostKind::Repost);
        let mentions: Vec<&str> = post.mentions.iter().map(Canonical::as_str).collect();
        assert_eq!(mentions, ["v1|account|x|a", "v1|account|x|b"], "distinct, without the author");
        assert_eq!(post.urls, ["https://example.com/a"]);
        assert_eq!(post.lang.as_deref(), Some("ar"));
        assert_eq!(post.post_hash, PostHash::of("x", "99"));
    }

    #[test]
    fn a_handle_and_a_profile_url_give_one_account() {
        let (by_handle, _) = post(r#"{"platform":"x","account":"@Someone","at":0,"post_id":"1"}"#);
        let (by_url, _) = post(
            r#"{"platform":"x","account":"https://twitter.com/someone?lang=en","at":0,"post_id":"2"}"#,
        );
        assert_eq!(by_handle.author.account, by_url.author.account);
    }

    #[test]
    fn unix_milliseconds_and_offsets_are_times() {
        let (post, _) = post(r#"{"platform":"x","account":"@a","at":1433152800000,"post_id":"1"}"#);
        assert_eq!(post.at_ms, 1_433_152_800_000);
        let (offset, _) = self::post(
            r#"{"platform":"x","account":"@a","at":"2015-06-01T12:00:00+02:00","post_id":"1"}"#,
        );
        assert_eq!(offset.at_ms, 1_433_152_800_000);
    }

    #[test]
    fn bad_references_are_dropped_and_counted() {
        let (post, dropped) = post(
            r#"{"platform":"x","account":"@a","at":0,"post_id":"1","account_id":"not an id",
            "reply_to":"bad handle!","mentions":["@ok",5,"no spaces allowed",null],
            "urls":["not a url","https://fine.example/"],"lang":"a b"}"#,
        );
        assert_eq!(dropped, 7);
        assert_eq!(post.mentions.len(), 1);
        assert_eq!(post.urls.len(), 1);
        assert!(post.reply_to.is_none() && post.author.account_id.is_none() && post.lang.is_none());
        assert_eq!(post.kind(), PostKind::Original, "a dropped reply_to makes no reply");
    }

    #[test]
    fn a_follow_snapshot_is_its_own_line() {
        let parsed =
            parse(r#"{"platform":"x","account":"@a","at":5,"follows":["@b","@B","@a","bad one"]}"#)
                .unwrap();
        let Observation::Follows(snapshot) = parsed.observation else { panic!("not follows") };
        assert_eq!(snapshot.follows.len(), 1);
        assert_eq!(parsed.dropped_references, 1);
    }

    #[test]
    fn lines_are_refused_by_number_and_rule_without_echo() {
        let cases = [
            ("not json at all @secret_handle", LineRule::NotAnObject),
            ("[1,2]", LineRule::NotAnObject),
            (r#"{"account":"@secret_handle","at":0,"post_id":"1"}"#, LineRule::Platform),
            (r#"{"platform":"x","account":"bad handle!","at":0,"post_id":"1"}"#, LineRule::Account),
            (r#"{"platform":"x","account":"@secret_handle","post_id":"1"}"#, LineRule::At),
            (
                r#"{"platform":"x","account":"@secret_handle","at":"yesterday","post_id":"1"}"#,
                LineRule::At,
            ),
            (r#"{"platform":"x","account":"@secret_handle","at":-5,"post_id":"1"}"#, LineRule::At),
            (r#"{"platform":"x","account":"@secret_handle","at":0}"#, LineRule::PostId),
            (
                r#"{"platform":"x","account":"@secret_handle","at":0,"post_id":""}"#,
                LineRule::PostId,
            ),
            (
                r#"{"platform":"x","account":"@secret_handle","at":"2100-01-01T00:00:00Z","post_id":"1"}"#,
                LineRule::Future,
            ),
        ];
        for (text, rule) in cases {
            let refusal = parse(text).unwrap_err();
            assert_eq!(refusal, Refusal { line: 7, rule }, "{text}");
            let message = refusal.to_string();
            assert!(message.starts_with("line 7: "), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        let long = format!(
            r#"{{"platform":"x","account":"@a","at":0,"post_id":"{}"}}"#,
            "9".repeat(MAX_LINE_BYTES)
        );
        assert_eq!(parse(&long).unwrap_err().rule, LineRule::TooLong);
    }

    #[test]
    fn the_future_tolerance_is_a_parameter() {
        let text =
            format!(r#"{{"platform":"x","account":"@a","at":{},"post_id":"1"}}"#, NOW + 1_000);
        assert_eq!(parse_line(&text, 1, NOW, 0).unwrap_err().rule, LineRule::Future);
        assert!(parse_line(&text, 1, NOW, 5_000).is_ok());
    }

    #[test]
    fn too_many_mentions_are_cut_and_counted() {
        let mentions: Vec<String> = (0..MAX_REFERENCES + 3).map(|i| format!("\"@m{i}\"")).collect();
        let text = format!(
            r#"{{"platform":"x","account":"@a","at":0,"post_id":"1","mentions":[{}]}}"#,
            mentions.join(",")
        );
        let (post, dropped) = post(&text);
        assert_eq!(post.mentions.len(), MAX_REFERENCES);
        assert_eq!(dropped, 3);
        // The weight is split over every distinct mention, not only the kept ones.
        assert_eq!(post.mentioned as usize, MAX_REFERENCES + 3);
    }
}
