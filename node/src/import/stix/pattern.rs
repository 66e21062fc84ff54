//! STIX 2.1 indicator patterns: a parser for the whole patterning grammar (so bad syntax and an
//! unsupported form are told apart) and the subset imports accept (docs/STIX.md §3): `=`
//! comparisons of a string on `user-account` (`account_login`, `user_id`, `account_type`),
//! `email-addr`, `url`, `domain-name` and `x-crossmatch-phone` `value`, joined by OR at the
//! observation or comparison level; AND only inside one observation, between comparisons of one
//! user-account. Anything else (`!=`, `LIKE`, `MATCHES`, `IN`, `FOLLOWEDBY`, qualifiers, other
//! types or properties) is unsupported. `x-crossmatch-withdrawn:indicator_id` names a withdrawn
//! indicator and carries no identifier.

use crate::import::RowRule;

/// One identifier a pattern names, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// A user-account's comparisons joined by AND.
    Account { account_type: Option<String>, login: Option<String>, user_id: Option<String> },
    /// `<type>:value = '…'` of an observable with a `value`.
    Value { kind: &'static str, value: String },
    /// `x-crossmatch-withdrawn:indicator_id = '…'`.
    Withdrawn,
}

/// The observable types whose `value` names an identifier.
pub(crate) const VALUE_TYPES: [&str; 4] =
    ["email-addr", "url", "domain-name", "x-crossmatch-phone"];

/// The deepest nesting of `(` and `[` together a pattern may have; deeper is `pattern_syntax`.
/// The parser and the checks over its tree recurse once a level, so this bounds the stack.
pub(crate) const MAX_PATTERN_NESTING: usize = 32;

/// What `pattern` names, or the rule it breaks.
pub(crate) fn identifiers(pattern: &str) -> Result<Vec<Found>, RowRule> {
    let tokens = lex(pattern).ok_or(RowRule::PatternSyntax)?;
    let mut parser = Parser { tokens, at: 0, depth: 0 };
    let tree = parser.followed_by().ok_or(RowRule::PatternSyntax)?;
    if parser.at != parser.tokens.len() {
        return Err(RowRule::PatternSyntax);
    }
    let mut found = Vec::new();
    accept_observations(&tree, &mut found)?;
    Ok(found)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenParen,
    CloseParen,
    Comma,
    Op(&'static str),
    Word(String),
    Path(String, String),
    Str(String),
    /// A number, a boolean, or a `t'…'`, `h'…'`, `b'…'` literal.
    Literal,
}

fn lex(text: &str) -> Option<Vec<Token>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b'[' | b']' | b'(' | b')' | b',' => {
                tokens.push(match byte {
                    b'[' => Token::Open,
                    b']' => Token::Close,
                    b'(' => Token::OpenParen,
                    b')' => Token::CloseParen,
                    _ => Token::Comma,
                });
                at += 1;
            }
            b'=' => {
                tokens.push(Token::Op("="));
                at += 1;
            }
            b'!' | b'<' | b'>' => {
                let two = bytes.get(at + 1) == Some(&b'=');
                tokens.push(Token::Op(match (byte, two) {
                    (b'!', true) => "!=",
                    (b'<', true) => "<=",
                    (b'>', true) => ">=",
                    (b'<', false) => "<",
                    (b'>', false) => ">",
                    _ => return None,
                }));
                at += 1 + usize::from(two);
            }
            b'\'' => {
                let (value, next) = string(text, at)?;
                tokens.push(Token::Str(value));
                at = next;
            }
            b'-' | b'0'..=b'9' => {
                let end = bytes[at + 1..]
                    .iter()
                    .position(|b| !(b.is_ascii_digit() || *b == b'.'))
                    .map_or(bytes.len(), |n| at + 1 + n);
                tokens.push(Token::Literal);
                at = end;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                if matches!(byte, b't' | b'h' | b'b') && bytes.get(at + 1) == Some(&b'\'') {
                    let (_, next) = string(text, at + 1)?;
                    tokens.push(Token::Literal);
                    at = next;
                    continue;
                }
                let end = bytes[at..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')))
                    .map_or(bytes.len(), |n| at + n);
                let word = &text[at..end];
                at = end;
                if bytes.get(at) != Some(&b':') {
                    tokens.push(Token::Word(word.to_owned()));
                    continue;
                }
                // An object path: `<type>:<property>(.<property>|.'<name>'|[<index>])*`.
                at += 1;
                let start = at;
                while at < bytes.len() {
                    match bytes[at] {
                        b if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') => {
                            at += 1;
                        }
                        b'\'' if at > start && bytes[at - 1] == b'.' => {
                            at = string(text, at)?.1;
                        }
                        b'[' => {
                            let close = bytes[at..].iter().position(|b| *b == b']')?;
                            at += close + 1;
                        }
                        _ => break,
                    }
                }
                if at == start {
                    return None;
                }
                tokens.push(Token::Path(word.to_owned(), text[start..at].to_owned()));
            }
            _ => return None,
        }
    }
    Some(tokens)
}

/// A quoted string from the `'` at `at`: its value (`\'` and `\\` the only escapes) and where
/// the text continues.
fn string(text: &str, at: usize) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text[at + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\'' => return Some((value, at + 1 + offset + 1)),
            '\\' => match chars.next()?.1 {
                escaped @ ('\'' | '\\') => value.push(escaped),
                _ => return None,
            },
            c => value.push(c),
        }
    }
    None
}

/// A parsed observation expression.
#[derive(Debug)]
enum Observation {
    Or(Vec<Observation>),
    /// AND or FOLLOWEDBY between observations, or a qualified observation.
    Unsupported,
    One(Comparisons),
}

#[derive(Debug)]
enum Comparisons {
    Or(Vec<Comparisons>),
    And(Vec<Comparisons>),
    One(Comparison),
}

#[derive(Debug)]
struct Comparison {
    object: String,
    property: String,
    /// `=` with a string, not negated.
    equals: Option<String>,
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Brackets and parentheses open at `at`.
    depth: usize,
}

impl Parser {
    /// Consumes `token` (an opening bracket) and enters one nesting level, or `None` when the
    /// token is not there or the level would pass [`MAX_PATTERN_NESTING`].
    fn open(&mut self, token: &Token) -> Option<()> {
        if self.peek() != Some(token) || self.depth >= MAX_PATTERN_NESTING {
            return None;
        }
        self.at += 1;
        self.depth += 1;
        Some(())
    }

    /// Consumes the closing `token` and leaves one nesting level.
    fn close(&mut self, token: &Token) -> Option<()> {
        self.eat(token)?;
        self.depth -= 1;
        Some(())
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn eat(&mut self, token: &Token) -> Option<()> {
        (self.peek() == Some(token)).then(|| self.at += 1)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.word(word);
        self.at += usize::from(found);
        found
    }

    fn followed_by(&mut self) -> Option<Observation> {
        let first = self.or()?;
        if !self.word("FOLLOWEDBY") {
            return Some(first);
        }
        while self.eat_word("FOLLOWEDBY") {
            self.or()?;
        }
        Some(Observation::Unsupported)
    }

    fn or(&mut self) -> Option<Observation> {
        let mut terms = vec![self.and()?];
        while self.eat_word("OR") {
            terms.push(self.and()?);
        }
        Some(if terms.len() == 1 { terms.remove(0) } else { Observation::Or(terms) })
    }

    fn and(&mut self) -> Option<Observation> {
        let first = self.qualified()?;
        if !self.word("AND") {
            return Some(first);
        }
        while self.eat_word("AND") {
            self.qualified()?;
        }
        Some(Observation::Unsupported)
    }

    fn qualified(&mut self) -> Option<Observation> {
        let mut observation = if self.peek() == Some(&Token::Open) {
            self.open(&Token::Open)?;
            let comparisons = self.comparison_or()?;
            self.close(&Token::Close)?;
            Observation::One(comparisons)
        } else {
            self.open(&Token::OpenParen)?;
            let inner = self.followed_by()?;
            self.close(&Token::CloseParen)?;
            inner
        };
        loop {
            if self.eat_word("WITHIN") {
                self.literal()?;
                self.eat_word("SECONDS").then_some(())?;
            } else if self.eat_word("REPEATS") {
                self.literal()?;
                self.eat_word("TIMES").then_some(())?;
            } else if self.eat_word("START") {
                self.literal()?;
                self.eat_word("STOP").then_some(())?;
                self.literal()?;
            } else {
                return Some(observation);
            }
            observation = Observation::Unsupported;
        }
    }

    fn literal(&mut self) -> Option<()> {
        matches!(self.peek(), Some(Token::Literal)).then(|| self.at += 1)
    }

    fn comparison_or(&mut self) -> Option<Comparisons> {
        let mut terms = vec![self.comparison_and()?];
        while self.eat_word("OR") {
            terms.push(self.comparison_and()?);
        }
        Some(if terms.len() == 1 { terms.remove(0) } else { Comparisons::Or(terms) })
    }

    fn comparison_and(&mut self) -> Option<Comparisons> {
        let mut terms = vec![self.comparison_unit()?];
        while self.eat_word("AND") {
            terms.push(self.comparison_unit()?);
        }
        Some(if terms.len() == 1 { terms.remove(0) } else { Comparisons::And(terms) })
    }

    fn comparison_unit(&mut self) -> Option<Comparisons> {
        if self.peek() == Some(&Token::OpenParen) {
            self.open(&Token::OpenParen)?;
            let inner = self.comparison_or()?;
            self.close(&Token::CloseParen)?;
            return Some(inner);
        }
        if self.eat_word("EXISTS") {
            let Some(Token::Path(object, property)) = self.peek().cloned() else { return None };
            self.at += 1;
            return Some(Comparisons::One(Comparison { object, property, equals: None }));
        }
        let Some(Token::Path(object, property)) = self.peek().cloned() else { return None };
        self.at += 1;
        let negated = self.eat_word("NOT");
        let operator = match self.peek()? {
            Token::Op(op) => *op,
            Token::Word(w)
                if ["IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"].contains(&w.as_str()) =>
            {
                "other"
            }
            _ => return None,
        };
        self.at += 1;
        let value = match self.peek()?.clone() {
            Token::Str(value) => {
                self.at += 1;
                Some(value)
            }
            Token::Literal => {
                self.at += 1;
                None
            }
            Token::Word(w) if w == "true" || w == "false" => {
                self.at += 1;
                None
            }
            Token::OpenParen => {
                self.at += 1;
                loop {
                    match self.peek()? {
                        Token::Str(_) | Token::Literal => self.at += 1,
                        _ => return None,
                    }
                    if self.eat(&Token::Comma).is_none() {
                        break;
                    }
                }
                self.eat(&Token::CloseParen)?;
                None
            }
            _ => return None,
        };
        let equals = value.filter(|_| operator == "=" && !negated);
        Some(Comparisons::One(Comparison { object, property, equals }))
    }
}

fn accept_observations(tree: &Observation, found: &mut Vec<Found>) -> Result<(), RowRule> {
    match tree {
        Observation::Unsupported => Err(RowRule::PatternUnsupported),
        Observation::Or(terms) => {
            terms.iter().try_for_each(|term| accept_observations(term, found))
        }
        Observation::One(comparisons) => accept_comparisons(comparisons, found),
    }
}

fn accept_comparisons(tree: &Comparisons, found: &mut Vec<Found>) -> Result<(), RowRule> {
    match tree {
        Comparisons::Or(terms) => terms.iter().try_for_each(|term| accept_comparisons(term, found)),
        Comparisons::One(comparison) => {
            found.push(conjunction(&[comparison])?);
            Ok(())
        }
        Comparisons::And(terms) => {
            let mut comparisons = Vec::new();
            flatten_and(terms, &mut comparisons)?;
            found.push(conjunction(&comparisons)?);
            Ok(())
        }
    }
}

fn flatten_and<'a>(terms: &'a [Comparisons], out: &mut Vec<&'a Comparison>) -> Result<(), RowRule> {
    for term in terms {
        match term {
            Comparisons::One(comparison) => out.push(comparison),
            Comparisons::And(inner) => flatten_and(inner, out)?,
            Comparisons::Or(_) => return Err(RowRule::PatternUnsupported),
        }
    }
    Ok(())
}

/// Comparisons joined by AND: one comparison of a value type, or one user-account's.
fn conjunction(comparisons: &[&Comparison]) -> Result<Found, RowRule> {
    let unsupported = Err(RowRule::PatternUnsupported);
    let mut values = Vec::with_capacity(comparisons.len());
    for comparison in comparisons {
        let Some(value) = &comparison.equals else { return unsupported };
        values.push((comparison.object.as_str(), comparison.property.as_str(), value));
    }
    if let [(object, property, value)] = values[..] {
        if let Some(kind) = VALUE_TYPES.iter().find(|t| **t == object) {
            return if property == "value" {
                Ok(Found::Value { kind, value: value.clone() })
            } else {
                unsupported
            };
        }
        if (object, property) == ("x-crossmatch-withdrawn", "indicator_id") {
            return Ok(Found::Withdrawn);
        }
    }
    let (mut account_type, mut login, mut user_id) = (None, None, None);
    for (object, property, value) in values {
        let slot = match (object, property) {
            ("user-account", "account_type") => &mut account_type,
            ("user-account", "account_login") => &mut login,
            ("user-account", "user_id") => &mut user_id,
            _ => return unsupported,
        };
        if slot.replace(value.clone()).is_some() {
            return unsupported;
        }
    }
    if login.is_none() && user_id.is_none() {
        return unsupported;
    }
    Ok(Found::Account { account_type, login, user_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(kind: &'static str, value: &str) -> Found {
        Found::Value { kind, value: value.into() }
    }

    #[test]
    fn the_accepted_forms() {
        assert_eq!(
            identifiers("[domain-name:value = 'example.org']"),
            Ok(vec![value("domain-name", "example.org")])
        );
        let or_observations =
            "[email-addr:value = 'a@example.org'] OR [url:value = 'https://example.org/x']";
        assert_eq!(
            identifiers(or_observations),
            Ok(vec![value("email-addr", "a@example.org"), value("url", "https://example.org/x")])
        );
        let or_comparisons =
            "([x-crossmatch-phone:value = '+33612345678' OR domain-name:value = 'b.example'])";
        assert_eq!(identifiers(or_comparisons).map(|f| f.len()), Ok(2));
        let account =
            "[user-account:account_login = 'it''s' AND user-account:account_type = 'twitter']";
        assert_eq!(identifiers(account), Err(RowRule::PatternSyntax));
        let account = r"[user-account:account_login = 'it\'s' AND (user-account:account_type = 'twitter' AND user-account:user_id = '12')]";
        assert_eq!(
            identifiers(account),
            Ok(vec![Found::Account {
                account_type: Some("twitter".into()),
                login: Some("it's".into()),
                user_id: Some("12".into()),
            }])
        );
        let alone = "[user-account:account_login = 'someone']";
        assert!(matches!(
            &identifiers(alone).unwrap()[0],
            Found::Account { account_type: None, .. }
        ));
        let withdrawn =
            "[x-crossmatch-withdrawn:indicator_id = '6ba7b810-9dad-41d1-80b4-00c04fd430c8']";
        assert_eq!(identifiers(withdrawn), Ok(vec![Found::Withdrawn]));
    }

    #[test]
    fn the_refused_forms() {
        let unsupported = [
            "[domain-name:value != 'example.org']",
            "[domain-name:value NOT = 'example.org']",
            "[domain-name:value LIKE 'example%']",
            "[domain-name:value MATCHES '^ex']",
            "[domain-name:value IN ('a.example', 'b.example')]",
            "[domain-name:resolves_to_refs[*].value = '1.2.3.4']",
            "[ipv4-addr:value = '1.2.3.4']",
            "[file:hashes.'SHA-256' = 'aa']",
            "[domain-name:value = 'a.example'] AND [url:value = 'https://a.example/']",
            "[domain-name:value = 'a.example'] FOLLOWEDBY [url:value = 'https://a.example/']",
            "[domain-name:value = 'a.example'] WITHIN 300 SECONDS",
            "[domain-name:value = 'a.example'] REPEATS 2 TIMES",
            "[domain-name:value = 'a.example'] START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'",
            "[domain-name:value = 'a.example' AND url:value = 'https://a.example/']",
            "[user-account:account_login = 'a' AND user-account:account_login = 'b']",
            "[user-account:account_type = 'twitter']",
            "[user-account:account_type = 'twitter' AND (user-account:account_login = 'a' OR user-account:account_login = 'b')]",
            "[domain-name:value = 12]",
            "[EXISTS domain-name:value]",
        ];
        for pattern in unsupported {
            assert_eq!(identifiers(pattern), Err(RowRule::PatternUnsupported), "{pattern}");
        }
        let syntax = [
            "",
            "domain-name:value = 'a.example'",
            "[domain-name:value = 'a.example'",
            "[domain-name:value = 'a.example']]",
            "[domain-name:value = 'unterminated]",
            "[domain-name:value = 'bad \\x escape']",
            "[domain-name:value 'a.example']",
            "[domain-name:value = 'a.example'] OR",
            "[domain-name:value = 'a.example'] WITHIN SECONDS",
            "[= 'a']",
        ];
        for pattern in syntax {
            assert_eq!(identifiers(pattern), Err(RowRule::PatternSyntax), "{pattern}");
        }
    }

    /// A pattern nested past the cap is refused before the parser's recursion can exhaust a
    /// blocking thread's 2 MiB stack; one at the cap still parses. Run on a thread of that stack.
    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let run = || {
            let max = crate::import::limits::MAX_PATTERN_BYTES;
            let parens = "(".repeat(max);
            let brackets = format!("[{}", "(".repeat(max - 1));
            let mixed = "([".repeat(max / 2);
            for pattern in [&parens, &brackets, &mixed] {
                assert_eq!(identifiers(pattern), Err(RowRule::PatternSyntax));
            }
            let leaf = "domain-name:value = 'a.example'";
            let at_cap = format!(
                "{}[{}{leaf}{}]{}",
                "(".repeat(16),
                "(".repeat(MAX_PATTERN_NESTING - 17),
                ")".repeat(MAX_PATTERN_NESTING - 17),
                ")".repeat(16)
            );
            assert_eq!(identifiers(&at_cap).map(|f| f.len()), Ok(1));
            let past_cap = format!("({at_cap})");
            assert_eq!(identifiers(&past_cap), Err(RowRule::PatternSyntax));
        };
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(run)
            .expect("spawn")
            .join()
            .expect("no overflow, assertions hold");
    }
}
