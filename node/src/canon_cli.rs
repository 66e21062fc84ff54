//! The `canon` and `token` commands: canonicalise identifiers, or turn them into tokens, one
//! output line per input, refusals reported on stderr by position and rule (never the input).

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crossmatch_protocol::{EpochKey, FederationId, Kind, MAX_INPUT_BYTES, Rule, canonicalize};

/// What to canonicalise: the rules to apply and the inputs.
#[derive(Debug, Clone, clap::Args)]
pub struct IdentifierArgs {
    /// Identifier kind: account, account_id, email, phone, url or domain.
    #[arg(long)]
    pub kind: Kind,
    /// Platform of accounts and account ids: x, telegram, facebook, instagram, youtube, tiktok,
    /// or the platform's domain. May be omitted for profile URLs.
    #[arg(long)]
    pub platform: Option<String>,
    /// Default region of national-format phone numbers (ISO 3166 alpha-2, e.g. FR).
    #[arg(long)]
    pub region: Option<String>,
    /// The identifiers; `-` reads them one per line from standard input.
    #[arg(required = true)]
    pub inputs: Vec<String>,
}

/// The `token` command's arguments: the federation's key material and the identifiers.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// File holding the federation secret (as written by `crossmatch secret new`).
    #[arg(long)]
    pub secret_file: PathBuf,
    /// The federation id, 64 hex digits.
    #[arg(long)]
    pub federation_id: FederationId,
    /// The token epoch.
    #[arg(long)]
    pub epoch: u32,
    #[command(flatten)]
    pub identifiers: IdentifierArgs,
}

/// What each accepted input is printed as.
#[derive(Debug)]
pub enum Output {
    /// Its canonical form.
    Canonical,
    /// Its token under this key, as hex.
    Token(EpochKey),
}

/// How many inputs were accepted and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Inputs printed.
    pub n_accepted: usize,
    /// Inputs refused (each reported on stderr).
    pub n_refused: usize,
}

impl Summary {
    /// 0 when every input was accepted, 2 (invalid input) otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.n_refused == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) }
    }
}

/// Runs `canon` or `token` on the process's standard streams.
pub fn run_stdio(args: &IdentifierArgs, output: &Output) -> io::Result<Summary> {
    let stdin = io::stdin();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let mut stderr = io::stderr().lock();
    let summary = run(args, output, &mut stdin.lock(), &mut stdout, &mut stderr)?;
    stdout.flush()?;
    Ok(summary)
}

/// Processes every input in order: arguments, with `-` replaced by the lines of `stdin`.
/// Refused inputs are reported on `stderr` by position and rule and the rest still processed.
pub fn run(
    args: &IdentifierArgs,
    output: &Output,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> io::Result<Summary> {
    let mut processor =
        Processor { args, output, stdout, stderr, n_inputs: 0, summary: Summary::default() };
    for input in &args.inputs {
        if input == "-" {
            let mut line_number = 0;
            while let Some(line) = read_line(stdin)? {
                line_number += 1;
                let position = format!("stdin line {line_number}");
                match line {
                    Line::Text(text) => processor.process(&text, &position)?,
                    Line::TooLong => processor.refuse(
                        &position,
                        Rule::TooLong.message(),
                        Rule::TooLong.code(),
                    )?,
                    Line::NotUtf8 => {
                        processor.refuse(&position, "input is not valid UTF-8", "utf-8")?
                    }
                }
            }
        } else {
            processor.process(input, "argument")?;
        }
    }
    Ok(processor.summary)
}

struct Processor<'a> {
    args: &'a IdentifierArgs,
    output: &'a Output,
    stdout: &'a mut dyn Write,
    stderr: &'a mut dyn Write,
    n_inputs: usize,
    summary: Summary,
}

impl Processor<'_> {
    fn process(&mut self, input: &str, source: &str) -> io::Result<()> {
        let result = canonicalize(
            self.args.kind,
            self.args.platform.as_deref(),
            self.args.region.as_deref(),
            input,
        );
        match result {
            Ok(canonical) => {
                self.n_inputs += 1;
                self.summary.n_accepted += 1;
                match self.output {
                    Output::Canonical => writeln!(self.stdout, "{canonical}"),
                    Output::Token(key) => writeln!(self.stdout, "{}", key.token(&canonical)),
                }
            }
            Err(error) => self.refuse(source, error.rule.message(), error.rule.code()),
        }
    }

    fn refuse(&mut self, source: &str, message: &str, code: &str) -> io::Result<()> {
        self.n_inputs += 1;
        self.summary.n_refused += 1;
        writeln!(
            self.stderr,
            "crossmatch: input {} ({source}) refused: {message} (rule {code})",
            self.n_inputs
        )
    }
}

enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

/// Reads one line (without its `\n` or `\r\n`), holding at most about [`MAX_INPUT_BYTES`] of
/// it in memory: a longer line is skipped and reported as too long.
fn read_line(reader: &mut dyn BufRead) -> io::Result<Option<Line>> {
    let limit = MAX_INPUT_BYTES + 2;
    let mut bytes = Vec::new();
    let n_read = Read::take(&mut *reader, limit as u64).read_until(b'\n', &mut bytes)?;
    if n_read == 0 {
        return Ok(None);
    }
    if bytes.last() != Some(&b'\n') && n_read == limit {
        skip_rest_of_line(reader)?;
        return Ok(Some(Line::TooLong));
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(Some(String::from_utf8(bytes).map_or(Line::NotUtf8, Line::Text)))
}

fn skip_rest_of_line(reader: &mut dyn BufRead) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                reader.consume(newline + 1);
                return Ok(());
            }
            None => {
                let n = buffer.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmatch_protocol::FederationSecret;

    fn args(kind: Kind, platform: Option<&str>, inputs: &[&str]) -> IdentifierArgs {
        IdentifierArgs {
            kind,
            platform: platform.map(str::to_owned),
            region: None,
            inputs: inputs.iter().map(|input| (*input).to_owned()).collect(),
        }
    }

    fn run_on(args: &IdentifierArgs, output: &Output, stdin: &[u8]) -> (Summary, String, String) {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let summary = run(args, output, &mut &stdin[..], &mut stdout, &mut stderr).unwrap();
        (summary, String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
    }

    #[test]
    fn arguments_and_stdin_lines_are_processed_in_order_and_refusals_do_not_stop_the_run() {
        let args = args(Kind::Account, Some("x"), &["@Jack", "-", "https://x.com/Ev"]);
        let (summary, stdout, stderr) =
            run_on(&args, &Output::Canonical, b"biz\r\nnot.valid\n\n  Dick  \n");
        assert_eq!(summary, Summary { n_accepted: 4, n_refused: 2 });
        assert_eq!(
            stdout,
            "v1|account|x|jack\nv1|account|x|biz\nv1|account|x|dick\nv1|account|x|ev\n"
        );
        assert_eq!(
            stderr,
            "crossmatch: input 3 (stdin line 2) refused: x handle must be 1-15 of A-Z a-z 0-9 _ \
             (rule x-handle)\n\
             crossmatch: input 4 (stdin line 3) refused: input is empty or only white space \
             (rule empty)\n"
        );
        assert!(!stderr.contains("not.valid"));
        assert_eq!(format!("{:?}", summary.exit_code()), format!("{:?}", ExitCode::from(2)));
    }

    #[test]
    fn token_output_is_the_hex_token_of_the_canonical_form() {
        let key =
            EpochKey::derive(&FederationId([3; 32]), &FederationSecret::from_bytes([4; 32]), 9);
        let expected = key.token(&canonicalize(Kind::Email, None, None, "a@example.com").unwrap());
        let args = args(Kind::Email, None, &["A@Example.com"]);
        let (summary, stdout, stderr) = run_on(&args, &Output::Token(key), b"");
        assert_eq!(summary, Summary { n_accepted: 1, n_refused: 0 });
        assert_eq!(stdout, format!("{expected}\n"));
        assert_eq!(stderr, "");
        assert_eq!(format!("{:?}", summary.exit_code()), format!("{:?}", ExitCode::SUCCESS));
    }

    #[test]
    fn overlong_and_non_utf8_lines_are_refused_and_skipped() {
        let mut stdin = b"example.com\n".to_vec();
        stdin.extend(std::iter::repeat_n(b'a', MAX_INPUT_BYTES * 3));
        stdin.extend(b"\n\xff\xfe\nexample.org");
        let args = args(Kind::Domain, None, &["-"]);
        let (summary, stdout, stderr) = run_on(&args, &Output::Canonical, &stdin);
        assert_eq!(summary, Summary { n_accepted: 2, n_refused: 2 });
        assert_eq!(stdout, "v1|domain|example.com\nv1|domain|example.org\n");
        assert!(stderr.contains(
            "input 2 (stdin line 2) refused: input is longer than 4096 bytes (rule too-long)"
        ));
        assert!(stderr.contains("input 3 (stdin line 3) refused: input is not valid UTF-8"));
    }

    #[test]
    fn a_line_of_exactly_the_maximum_length_is_read_whole() {
        let mut stdin = vec![b'a'; MAX_INPUT_BYTES - 4];
        stdin.extend(b".com\r\n");
        let args = args(Kind::Domain, None, &["-"]);
        let (summary, _, stderr) = run_on(&args, &Output::Canonical, &stdin);
        // Read whole, then refused by the domain rule rather than cut short.
        assert_eq!(summary.n_refused, 1);
        assert!(stderr.contains("(rule domain)"), "{stderr}");
    }
}
