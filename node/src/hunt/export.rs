//! Exports of the analytics for the tools analysts already use: the community graph as GraphML
//! or GEXF (Gephi), the accounts and their links as two CSV files (i2 Analyst's Notebook).
//! Pure writers over an [`Analytics`]: text in, text out.
//!
//! - **What goes out.** Nodes are the accounts of the structure window's graph (or of one
//!   community), with their community id and label, membership confidence, PageRank and
//!   activity; edges are the communities' internal edges (amplifier → amplified, weight
//!   `ln(1 + summed weight)`, the heaviest [`MAX_INTERNAL_EDGES`] per community, as
//!   `GET /v1/analytics/communities/{id}` gives them). Only the unit's own observations and
//!   analytics: nothing another member shared (under H2 or any other code) annotates an export.
//! - **Handling marks.** Every export carries the mark it is given: an XML comment before the
//!   root element and a graph attribute (GraphML `<data key="handling">`, GEXF
//!   `<meta><description>`), and a `handling` column on every CSV row (a CSV file has no place
//!   for a comment that i2's importer would not take for a row).
//! - **Hostile text.** Handles and labels are chosen by others. XML text and attributes escape
//!   `& < > " '`; characters XML 1.0 cannot carry (controls other than tab, line feed and
//!   carriage return) become U+FFFD. CSV cells are quoted when they hold `,`, `"`, a line break
//!   or begin or end with a space (RFC 4180, quotes doubled), and a cell that begins with `=`,
//!   `+`, `-`, `@`, a tab or a carriage return is prefixed with `'`, so no spreadsheet runs it
//!   as a formula.
//!
//! [`MAX_INTERNAL_EDGES`]: super::analytics::MAX_INTERNAL_EDGES

use std::fmt::Write as _;

use super::analytics::{AccountStats, Analytics};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// GraphML, for Gephi and most graph tools.
    Graphml,
    /// GEXF 1.3, Gephi's own.
    Gexf,
    /// The accounts, one row each (i2: entities).
    AccountsCsv,
    /// The links, one row each (i2: links).
    LinksCsv,
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [Self; 4] = [Self::Graphml, Self::Gexf, Self::AccountsCsv, Self::LinksCsv];

    /// The format's name in the API and the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Graphml => "graphml",
            Self::Gexf => "gexf",
            Self::AccountsCsv => "accounts.csv",
            Self::LinksCsv => "links.csv",
        }
    }

    /// Its media type.
    pub const fn media_type(self) -> &'static str {
        match self {
            Self::Graphml | Self::Gexf => "application/xml; charset=utf-8",
            Self::AccountsCsv | Self::LinksCsv => "text/csv; charset=utf-8",
        }
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|format| format.as_str() == name).ok_or(UnknownFormat)
    }
}

/// A format name that is none of [`ExportFormat::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format: expected graphml, gexf, accounts.csv or links.csv")]
pub struct UnknownFormat;

/// The handling mark of an export under a handling code (the config's
/// `hunt.export_handling`, default H1): the code and what it means, as docs/DESIGN.md gives the
/// Europol codes.
pub fn handling_mark(handling: crossmatch_protocol::Handling) -> &'static str {
    use crossmatch_protocol::Handling;
    match handling {
        Handling::H0 => "H0 local analytics: law-enforcement use only",
        Handling::H1 => "H1 local analytics: not for use as evidence without permission",
        Handling::H2 => "H2 local analytics: not to be disseminated without permission",
        Handling::H3 => "H3 local analytics: other restrictions apply",
    }
}

/// An export written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The text.
    pub text: String,
    /// Accounts in it.
    pub nodes: usize,
    /// Links in it.
    pub edges: usize,
}

/// The accounts and links an export covers: every community, or one.
struct Scope<'a> {
    analytics: &'a Analytics,
    /// Indices into `analytics.accounts`, in order.
    nodes: Vec<usize>,
    /// (from, to, weight, community id) as indices into `analytics.accounts`.
    edges: Vec<(usize, usize, f64, u64)>,
}

impl<'a> Scope<'a> {
    fn new(analytics: &'a Analytics, community: Option<u64>) -> Self {
        let chosen = |id: u64| community.is_none_or(|wanted| wanted == id);
        let nodes = (0..analytics.accounts.len())
            .filter(|&n| chosen(analytics.accounts[n].community))
            .collect();
        let edges = analytics
            .communities
            .iter()
            .filter(|c| chosen(c.id))
            .flat_map(|c| c.internal_edges.iter().map(|&(from, to, w)| (from, to, w, c.id)))
            .collect();
        Self { analytics, nodes, edges }
    }

    fn account(&self, n: usize) -> &AccountStats {
        &self.analytics.accounts[n]
    }

    fn community_label(&self, id: u64) -> &str {
        self.analytics.community(id).and_then(|c| c.labels.first()).map_or("", String::as_str)
    }
}

/// Writes an export of `analytics` (one community's, or all when `community` is `None`),
/// marked with `handling`.
pub fn export(
    analytics: &Analytics,
    format: ExportFormat,
    community: Option<u64>,
    handling: &str,
) -> Export {
    let scope = Scope::new(analytics, community);
    let text = match format {
        ExportFormat::Graphml => graphml(&scope, handling),
        ExportFormat::Gexf => gexf(&scope, handling),
        ExportFormat::AccountsCsv => accounts_csv(&scope, handling),
        ExportFormat::LinksCsv => links_csv(&scope, handling),
    };
    Export { text, nodes: scope.nodes.len(), edges: scope.edges.len() }
}

fn graphml(scope: &Scope<'_>, handling: &str) -> String {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<!-- handling: {} -->", xml_comment(handling));
    out.push_str("<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n");
    for (id, target, kind) in [
        ("handling", "graph", "string"),
        ("label", "node", "string"),
        ("platform", "node", "string"),
        ("community", "node", "long"),
        ("community_label", "node", "string"),
        ("confidence", "node", "double"),
        ("pagerank", "node", "double"),
        ("posts", "node", "int"),
        ("originals", "node", "int"),
        ("amplifiers", "node", "int"),
        ("weight", "edge", "double"),
    ] {
        let _ = writeln!(
            out,
            "  <key id=\"{id}\" for=\"{target}\" attr.name=\"{id}\" attr.type=\"{kind}\"/>"
        );
    }
    out.push_str("  <graph id=\"crossmatch\" edgedefault=\"directed\">\n");
    let _ = writeln!(out, "    <data key=\"handling\">{}</data>", xml(handling));
    for &n in &scope.nodes {
        let account = scope.account(n);
        let _ = writeln!(out, "    <node id=\"n{n}\">");
        let mut data = |key: &str, value: &str| {
            let _ = writeln!(out, "      <data key=\"{key}\">{}</data>", xml(value));
        };
        data("label", &account.account);
        data("platform", &account.platform);
        data("community", &account.community.to_string());
        data("community_label", scope.community_label(account.community));
        if let Some(confidence) = account.confidence {
            data("confidence", &number(confidence));
        }
        if let Some(pagerank) = account.pagerank {
            data("pagerank", &number(pagerank));
        }
        data("posts", &account.activity.posts().to_string());
        data("originals", &account.activity.originals.to_string());
        data("amplifiers", &account.distinct_amplifiers.to_string());
        out.push_str("    </node>\n");
    }
    for (e, &(from, to, weight, _)) in scope.edges.iter().enumerate() {
        let _ = writeln!(
            out,
            "    <edge id=\"e{e}\" source=\"n{from}\" target=\"n{to}\"><data key=\"weight\">{}</data></edge>",
            number(weight)
        );
    }
    out.push_str("  </graph>\n</graphml>\n");
    out
}

fn gexf(scope: &Scope<'_>, handling: &str) -> String {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<!-- handling: {} -->", xml_comment(handling));
    out.push_str("<gexf xmlns=\"http://gexf.net/1.3\" version=\"1.3\">\n");
    let _ = writeln!(
        out,
        "  <meta>\n    <creator>crossmatch</creator>\n    <description>handling: {}</description>\n  </meta>",
        xml(handling)
    );
    out.push_str("  <graph defaultedgetype=\"directed\" mode=\"static\">\n");
    out.push_str("    <attributes class=\"node\" mode=\"static\">\n");
    let attributes = [
        ("platform", "string"),
        ("community", "long"),
        ("community_label", "string"),
        ("confidence", "double"),
        ("pagerank", "double"),
        ("posts", "integer"),
        ("originals", "integer"),
        ("amplifiers", "integer"),
    ];
    for (id, kind) in attributes {
        let _ = writeln!(out, "      <attribute id=\"{id}\" title=\"{id}\" type=\"{kind}\"/>");
    }
    out.push_str("    </attributes>\n    <nodes>\n");
    for &n in &scope.nodes {
        let account = scope.account(n);
        let _ = writeln!(out, "      <node id=\"n{n}\" label=\"{}\">", xml(&account.account));
        out.push_str("        <attvalues>\n");
        let mut value = |key: &str, value: &str| {
            let _ = writeln!(out, "          <attvalue for=\"{key}\" value=\"{}\"/>", xml(value));
        };
        value("platform", &account.platform);
        value("community", &account.community.to_string());
        value("community_label", scope.community_label(account.community));
        if let Some(confidence) = account.confidence {
            value("confidence", &number(confidence));
        }
        if let Some(pagerank) = account.pagerank {
            value("pagerank", &number(pagerank));
        }
        value("posts", &account.activity.posts().to_string());
        value("originals", &account.activity.originals.to_string());
        value("amplifiers", &account.distinct_amplifiers.to_string());
        out.push_str("        </attvalues>\n      </node>\n");
    }
    out.push_str("    </nodes>\n    <edges>\n");
    for (e, &(from, to, weight, _)) in scope.edges.iter().enumerate() {
        let _ = writeln!(
            out,
            "      <edge id=\"e{e}\" source=\"n{from}\" target=\"n{to}\" weight=\"{}\"/>",
            number(weight)
        );
    }
    out.push_str("    </edges>\n  </graph>\n</gexf>\n");
    out
}

/// `accounts.csv`: `account,platform,community,community_label,confidence,pagerank,posts,
/// originals,reposts,replies,amplifiers,handling`, one row per account.
fn accounts_csv(scope: &Scope<'_>, handling: &str) -> String {
    let mut out = String::from(
        "account,platform,community,community_label,confidence,pagerank,posts,originals,reposts,replies,amplifiers,handling\r\n",
    );
    for &n in &scope.nodes {
        let a = scope.account(n);
        let row = [
            a.account.clone(),
            a.platform.clone(),
            a.community.to_string(),
            scope.community_label(a.community).to_owned(),
            a.confidence.map(number).unwrap_or_default(),
            a.pagerank.map(number).unwrap_or_default(),
            a.activity.posts().to_string(),
            a.activity.originals.to_string(),
            a.activity.reposts.to_string(),
            a.activity.replies.to_string(),
            a.distinct_amplifiers.to_string(),
            handling.to_owned(),
        ];
        csv_row(&mut out, &row);
    }
    out
}

/// `links.csv`: `from,to,weight,community,handling`, one row per directed link (amplifier →
/// amplified), accounts named by canonical form as in `accounts.csv`.
fn links_csv(scope: &Scope<'_>, handling: &str) -> String {
    let mut out = String::from("from,to,weight,community,handling\r\n");
    for &(from, to, weight, community) in &scope.edges {
        let row = [
            scope.account(from).account.clone(),
            scope.account(to).account.clone(),
            number(weight),
            community.to_string(),
            handling.to_owned(),
        ];
        csv_row(&mut out, &row);
    }
    out
}

fn csv_row(out: &mut String, cells: &[String]) {
    for (n, cell) in cells.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&csv_cell(cell));
    }
    out.push_str("\r\n");
}

/// One CSV cell: formula prefixes defused, then quoted when needed (see the module docs).
pub fn csv_cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    let quote = defused.contains([',', '"', '\n', '\r'])
        || defused.starts_with(' ')
        || defused.ends_with(' ');
    if quote { format!("\"{}\"", defused.replace('"', "\"\"")) } else { defused }
}

/// XML text or attribute value: escaped, and characters XML 1.0 cannot carry replaced.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Text for an XML comment: escaped as text, and no `--` (which ends a comment's legality).
fn xml_comment(text: &str) -> String {
    let mut out = xml(text);
    while out.contains("--") {
        out = out.replace("--", "- -");
    }
    if out.ends_with('-') {
        out.push(' ');
    }
    out
}

/// Whether XML 1.0 allows a character (tab, line feed and carriage return are escaped apart).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// A number as exports write it: finite, shortest round-trip form; 0 for what is not finite.
fn number(value: f64) -> String {
    if value.is_finite() { format!("{value}") } else { "0".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::analytics::CommunityStats;
    use crate::hunt::ledger::Activity;

    const HOSTILE: &str = "v1|account|x|<script>&\"quote'\u{1}\u{0}-->=cmd";

    fn account(name: &str, community: u64) -> AccountStats {
        AccountStats {
            account: name.to_owned(),
            platform: "x".to_owned(),
            languages: Vec::new(),
            activity: Activity { originals: 3, reposts: 2, replies: 1 },
            previous_activity: Activity::default(),
            structure_activity: Activity::default(),
            distinct_amplifiers: 4,
            pagerank: Some(0.25),
            community,
            confidence: Some(0.8),
        }
    }

    fn analytics() -> Analytics {
        Analytics {
            accounts: vec![
                account(HOSTILE, 1),
                account("=HYPERLINK(\"http://evil\")", 1),
                account("v1|account|x|plain", 1),
                account("v1|account|x|elsewhere", 2),
            ],
            communities: vec![
                CommunityStats {
                    id: 1,
                    labels: vec!["@sum(1,2) & <b>\u{7}".to_owned()],
                    members: vec![0, 1, 2],
                    core_size: 3,
                    internal_edges: vec![(0, 1, 1.5), (2, 0, 0.5)],
                    merged_ids: Vec::new(),
                    offered_ids: Vec::new(),
                },
                CommunityStats {
                    id: 2,
                    labels: Vec::new(),
                    members: vec![3],
                    core_size: 1,
                    internal_edges: Vec::new(),
                    merged_ids: Vec::new(),
                    offered_ids: Vec::new(),
                },
            ],
            ..Analytics::default()
        }
    }

    /// Parses a whole document (end names and comments checked), returning its attribute values
    /// and its text runs, unescaped.
    fn parse(text: &str) -> Vec<String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        reader.config_mut().check_comments = true;
        let mut seen = Vec::new();
        let mut run = String::new();
        let mut depth = 0i32;
        loop {
            let event =
                reader.read_event().unwrap_or_else(|e| panic!("not well-formed: {e}\n{text}"));
            match &event {
                Event::Text(part) => run.push_str(&part.decode().expect("utf-8")),
                Event::GeneralRef(reference) => match reference.resolve_char_ref().expect("ref") {
                    Some(c) => run.push(c),
                    None => {
                        let name = reference.decode().expect("utf-8");
                        let entity = format!("&{name};");
                        run.push_str(&quick_xml::escape::unescape(&entity).expect("entity"));
                    }
                },
                _ => {
                    if !run.trim().is_empty() {
                        seen.push(run.clone());
                    }
                    run.clear();
                }
            }
            match event {
                Event::Eof => break,
                Event::Start(element) | Event::Empty(element) => {
                    for attribute in element.attributes() {
                        let attribute = attribute.expect("attribute");
                        let value = attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0);
                        seen.push(value.expect("escape").into_owned());
                    }
                    depth += 1;
                }
                Event::End(_) => depth -= 1,
                _ => {}
            }
        }
        assert!(depth >= 0);
        seen
    }

    fn no_raw_controls(text: &str) {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n' && c != '\r'),
            "a raw control character in {text:?}"
        );
    }

    #[test]
    fn graph_exports_parse_and_carry_hostile_handles_escaped() {
        let analytics = analytics();
        let shown = HOSTILE.replace(['\u{1}', '\u{0}'], "\u{FFFD}");
        for format in [ExportFormat::Graphml, ExportFormat::Gexf] {
            let export =
                export(&analytics, format, None, "H1 local analytics -- not for dissemination");
            no_raw_controls(&export.text);
            let values = parse(&export.text);
            assert!(values.contains(&shown), "{format:?}: {values:?}");
            assert!(values.contains(&"=HYPERLINK(\"http://evil\")".to_owned()));
            assert!(values.iter().any(|v| v.starts_with("@sum(1,2) & <b>")), "the label");
            assert!(values.iter().any(|v| v.contains("H1 local analytics")), "the mark");
            assert!(export.text.contains("<!-- handling: H1 local analytics - - not"));
            assert_eq!((export.nodes, export.edges), (4, 2));
            assert!(!export.text.contains("<script>"));
        }
        let one = export(&analytics, ExportFormat::Graphml, Some(2), "H1");
        assert_eq!((one.nodes, one.edges), (1, 0));
        assert!(one.text.contains("elsewhere") && !one.text.contains("plain"));
    }

    #[test]
    fn csv_exports_quote_and_defuse_formulas() {
        let analytics = analytics();
        let accounts = export(&analytics, ExportFormat::AccountsCsv, Some(1), "H1 local");
        let lines: Vec<&str> = accounts.text.split("\r\n").collect();
        assert!(lines[0].starts_with("account,platform,community,community_label,"));
        assert_eq!(lines.len(), 5, "a header, three accounts and the final line break");
        assert!(
            lines[2].starts_with("\"'=HYPERLINK(\"\"http://evil\"\")\",x,1,\"'@sum(1,2) & <b>"),
            "{}",
            lines[2]
        );
        assert!(lines[3].ends_with(",H1 local"), "the handling column");
        let links = export(&analytics, ExportFormat::LinksCsv, None, "H1");
        assert_eq!(links.edges, 2);
        assert!(links.text.starts_with("from,to,weight,community,handling\r\n"));
        assert!(links.text.contains(",1.5,1,H1\r\n"));
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("+x"), "'+x");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("a\nb"), "\"a\nb\"");
        assert_eq!(csv_cell(" padded"), "\" padded\"");
        assert_eq!(csv_cell("plain"), "plain");
    }

    #[test]
    fn formats_parse_by_name() {
        for format in ExportFormat::ALL {
            assert_eq!(format.as_str().parse::<ExportFormat>(), Ok(format));
        }
        assert!("xlsx".parse::<ExportFormat>().is_err());
        assert_eq!(xml("a\u{FFFE}b\u{1F600}"), "a\u{FFFD}b\u{1F600}");
    }
}
