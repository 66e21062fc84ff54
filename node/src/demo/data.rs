//! The demo's generated lists: for each member, accounts of every kind in the messy forms
//! analysts paste (`@Handle`, mobile profile URLs with trackers, upper-case e-mail addresses,
//! national phone numbers with a region, IDN domains), with a controlled overlap between every
//! pair of members, each side writing a shared account in another form. Every input goes
//! through `canonicalize`, as the API does; the few malformed ones are refused and counted.
//! Deterministic: a seeded splitmix64. Fictional: handles are made of stock words and a
//! number, e-mail addresses, URLs and domains are under `.example`, and phone numbers are in
//! the range France reserves for fiction (01 99 00 xx xx).

use crossmatch_protocol::{Canonical, Kind, canonicalize};

/// The generator's seed: every run of the demo loads the same lists.
pub const SEED: u64 = 0x5eed_c0de_2026_0013;

/// Phone numbers available in the fictional range; accounts past it are X handles instead.
const PHONE_NUMBERS: u64 = 10_000;

/// About one input in this many is malformed (refused by canonicalisation, counted).
const MALFORMED_ONE_IN: u64 = 97;

/// Words handles are made of.
const WORDS: [&str; 12] = [
    "news", "voice", "truth", "light", "dawn", "call", "path", "echo", "banner", "front", "media",
    "wave",
];

/// splitmix64: a small, seeded, well-mixed generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (> 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// One generated input: what the analyst pasted, and its canonical form.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The input as written (raw data: stays in this process and the member's store).
    pub input: String,
    /// Its canonical form.
    pub canonical: Canonical,
    /// The account it is a form of (equal for every form of one account).
    pub account: u64,
}

/// One member's list.
#[derive(Debug, Clone, Default)]
pub struct MemberList {
    /// The inputs that canonicalised, in list order.
    pub records: Vec<Generated>,
    /// Malformed inputs refused by canonicalisation.
    pub refused: usize,
}

/// How many accounts each pair of members shares, for lists of `records` among `members`:
/// about a tenth of each list overlaps with the others, at least one account per pair.
pub fn overlap_per_pair(members: usize, records: usize) -> usize {
    let others = members.saturating_sub(1).max(1);
    (records / (10 * others)).max(1)
}

/// The index of the pair (`i`, `j`), `i != j`, among all pairs of `members`.
fn pair_index(members: usize, i: usize, j: usize) -> usize {
    let (low, high) = if i < j { (i, j) } else { (j, i) };
    // Pairs (0,1) … (0,n-1), (1,2) … in order.
    low * members - low * (low + 1) / 2 + (high - low - 1)
}

/// Member `member`'s list of `records` inputs in a federation of `members`: first the accounts
/// it shares with each other member (in member order), then its own. Account numbers: own
/// accounts below `members * records`, shared ones after, so no two lists share by accident.
pub fn member_list(seed: u64, members: usize, member: usize, records: usize) -> MemberList {
    let mut rng = SplitMix64::new(seed ^ (member as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f));
    let overlap = overlap_per_pair(members, records);
    let shared_base = (members * records) as u64;
    // (account, the form a shared account is written in here).
    let mut accounts: Vec<(u64, Option<u64>)> = Vec::with_capacity(records);
    for other in (0..members).filter(|&other| other != member) {
        let pair = pair_index(members, member, other);
        let first = shared_base + (pair * overlap) as u64;
        // The two sides of a pair write its accounts in consecutive, so different, forms.
        let form = pair as u64 + u64::from(member > other);
        accounts.extend((0..overlap as u64).map(|k| (first + k, Some(form + k))));
    }
    let own_base = (member * records) as u64;
    let mut next_own = own_base;
    while accounts.len() < records {
        accounts.push((next_own, None));
        next_own += 1;
    }
    accounts.truncate(records);
    let mut list = MemberList::default();
    for (account, shared_form) in accounts {
        // Shared accounts are never malformed: the overlap is exact.
        if shared_form.is_none() && rng.below(MALFORMED_ONE_IN) == 0 {
            let input = malformed(&mut rng, account);
            match canonicalize(input.kind, input.platform, input.region, &input.text) {
                Ok(canonical) => {
                    list.records.push(Generated { input: input.text, canonical, account })
                }
                Err(_) => list.refused += 1,
            }
            continue;
        }
        let form = shared_form.unwrap_or_else(|| rng.below(4));
        let input = form_of(account, form, &mut rng);
        match canonicalize(input.kind, input.platform, input.region, &input.text) {
            Ok(canonical) => list.records.push(Generated { input: input.text, canonical, account }),
            Err(_) => list.refused += 1,
        }
    }
    list
}

/// An input as an analyst would submit it: the kind, platform and region fields beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The identifier's kind.
    pub kind: Kind,
    /// The platform field, if filled in.
    pub platform: Option<&'static str>,
    /// The region field, if filled in.
    pub region: Option<&'static str>,
    /// The text.
    pub text: String,
}

fn input(
    kind: Kind,
    platform: Option<&'static str>,
    region: Option<&'static str>,
    text: String,
) -> Input {
    Input { kind, platform, region, text }
}

/// A handle of account `account`: two words and the account number.
fn handle_words(account: u64) -> (&'static str, &'static str) {
    let mut rng = SplitMix64::new(account.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let first = WORDS[rng.below(WORDS.len() as u64) as usize];
    let second = WORDS[rng.below(WORDS.len() as u64) as usize];
    (first, second)
}

/// Upper-cases the first letter of each `_`-separated part: `Dawn_Echo_17`.
fn title_case(text: &str) -> String {
    text.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// The kind account `account` is of, by its number.
fn kind_of(account: u64) -> u64 {
    let kind = account % 6;
    if kind == 3 && account / 6 >= PHONE_NUMBERS { 0 } else { kind }
}

/// Form `form` (any number; taken modulo the kind's forms) of account `account`.
pub fn form_of(account: u64, form: u64, rng: &mut SplitMix64) -> Input {
    let (first, second) = handle_words(account);
    let tracker = rng.below(1_000_000);
    match kind_of(account) {
        // X: handles are at most 15 characters.
        0 => {
            let handle = format!("{}_{}", &first[..first.len().min(4)], account);
            let shown = title_case(&handle);
            match form % 4 {
                0 => input(Kind::Account, Some("x"), None, format!("@{shown}")),
                1 => input(
                    Kind::Account,
                    None,
                    None,
                    format!("https://mobile.twitter.com/{handle}?s=20"),
                ),
                2 => input(Kind::Account, None, None, format!("x.com/{shown}")),
                _ => input(
                    Kind::Account,
                    None,
                    None,
                    format!(
                        "https://twitter.com/{shown}?ref_src=twsrc%5Etfw&utm_source=share&t={tracker}"
                    ),
                ),
            }
        }
        // Telegram: 5 to 32 characters, a letter first.
        1 => {
            let handle = format!("{first}_{second}_{account}");
            let shown = title_case(&handle);
            match form % 4 {
                0 => input(Kind::Account, None, None, format!("t.me/{handle}")),
                1 => input(Kind::Account, Some("telegram"), None, format!("@{shown}")),
                2 => input(
                    Kind::Account,
                    None,
                    None,
                    format!("https://t.me/{shown}?utm_source=forward&utm_medium={tracker}"),
                ),
                _ => input(Kind::Account, None, None, format!("https://telegram.me/{handle}")),
            }
        }
        // E-mail: upper case, or not.
        2 => {
            let address = format!("{first}.{second}.{account}@{second}-press.example");
            match form % 3 {
                0 => input(Kind::Email, None, None, address.to_uppercase()),
                1 => input(Kind::Email, None, None, format!("  {address}  ")),
                _ => input(
                    Kind::Email,
                    None,
                    None,
                    title_case(&address.replace('.', "_")).replace('_', "."),
                ),
            }
        }
        // Phone: the fictional range, national forms with a region, or international.
        3 => {
            let n = account / 6;
            let (a, b) = (n / 100, n % 100);
            match form % 4 {
                0 => input(Kind::Phone, None, Some("FR"), format!("01 99 00 {a:02} {b:02}")),
                1 => input(Kind::Phone, None, None, format!("+33 1 99 00 {a:02} {b:02}")),
                2 => input(Kind::Phone, None, Some("fr"), format!("01.99.00.{a:02}.{b:02}")),
                _ => input(Kind::Phone, None, Some("DE"), format!("0033 1 99 00 {a:02} {b:02}")),
            }
        }
        // URLs: case, default port, dot segments and fragments the canonical form drops.
        4 => {
            let host = format!("{first}-{second}-{account}.example");
            let path = format!("statement/{account}");
            match form % 3 {
                0 => input(Kind::Url, None, None, format!("https://{host}/{path}")),
                1 => input(
                    Kind::Url,
                    None,
                    None,
                    format!("HTTPS://{}:443/news/../{path}#share", host.to_uppercase()),
                ),
                _ => input(Kind::Url, None, None, format!("https://{host}./{path}#top-{tracker}")),
            }
        }
        // Domains: an IDN, in Unicode (any case, a trailing dot) or already in lower case.
        _ => {
            let name = format!("bücher-{first}-{account}.example");
            match form % 3 {
                0 => input(Kind::Domain, None, None, name.clone()),
                1 => input(Kind::Domain, None, None, format!("{}.", name.to_uppercase())),
                _ => input(
                    Kind::Domain,
                    None,
                    None,
                    title_case(&name.replace('-', "_")).replace('_', "-"),
                ),
            }
        }
    }
}

/// A malformed input, as lists hold a few: refused by canonicalisation.
fn malformed(rng: &mut SplitMix64, account: u64) -> Input {
    match rng.below(4) {
        0 => input(Kind::Account, Some("x"), None, format!("@bad handle {account}")),
        1 => input(Kind::Email, None, None, format!("contact-{account}(at)example")),
        2 => input(Kind::Phone, None, None, format!("01 99 00 {account}")),
        _ => input(Kind::Url, None, None, format!("ftp://files-{account}.example/")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn canonical_set(list: &MemberList) -> BTreeSet<String> {
        list.records.iter().map(|g| g.canonical.as_str().to_owned()).collect()
    }

    #[test]
    fn the_lists_are_deterministic() {
        let a = member_list(SEED, 5, 2, 400);
        let b = member_list(SEED, 5, 2, 400);
        let inputs =
            |list: &MemberList| list.records.iter().map(|g| g.input.clone()).collect::<Vec<_>>();
        assert_eq!(inputs(&a), inputs(&b));
        assert_eq!(a.refused, b.refused);
        assert_ne!(inputs(&a), inputs(&member_list(SEED + 1, 5, 2, 400)), "the seed matters");
    }

    #[test]
    fn every_form_of_one_account_gives_one_canonical_form() {
        let mut rng = SplitMix64::new(7);
        // Every kind (account numbers 0..6 cover them), a phone past the range too.
        for account in (0..60).chain([6 * PHONE_NUMBERS + 3]) {
            let forms: BTreeSet<String> = (0..12)
                .map(|form| {
                    let input = form_of(account, form, &mut rng);
                    canonicalize(input.kind, input.platform, input.region, &input.text)
                        .unwrap_or_else(|error| panic!("{:?} refused: {error}", input))
                        .as_str()
                        .to_owned()
                })
                .collect();
            assert_eq!(forms.len(), 1, "account {account}: {forms:?}");
        }
        // The forms are messy: not all written alike.
        let written: BTreeSet<String> =
            (0..4).map(|form| form_of(0, form, &mut rng).text).collect();
        assert_eq!(written.len(), 4);
    }

    #[test]
    fn each_pair_of_members_shares_exactly_its_overlap() {
        let (members, records) = (5, 300);
        let overlap = overlap_per_pair(members, records);
        assert_eq!(overlap, 7);
        let lists: Vec<MemberList> =
            (0..members).map(|m| member_list(SEED, members, m, records)).collect();
        let sets: Vec<BTreeSet<String>> = lists.iter().map(canonical_set).collect();
        for i in 0..members {
            assert_eq!(lists[i].records.len() + lists[i].refused, records);
            for j in (i + 1)..members {
                assert_eq!(sets[i].intersection(&sets[j]).count(), overlap, "members {i} and {j}");
            }
        }
        // Some inputs are malformed, and refused.
        assert!(lists.iter().map(|l| l.refused).sum::<usize>() > 0);
        // Shared accounts are written differently on each side.
        let first_shared = &lists[0].records[0];
        let other = lists[1].records.iter().find(|g| g.account == first_shared.account).unwrap();
        assert_eq!(other.canonical, first_shared.canonical);
        assert_ne!(other.input, first_shared.input);
    }

    #[test]
    fn pairs_are_numbered_densely() {
        let members = 6;
        let mut seen = BTreeSet::new();
        for i in 0..members {
            for j in 0..members {
                if i != j {
                    assert_eq!(pair_index(members, i, j), pair_index(members, j, i));
                    seen.insert(pair_index(members, i, j));
                }
            }
        }
        assert_eq!(seen, (0..members * (members - 1) / 2).collect());
    }
}
