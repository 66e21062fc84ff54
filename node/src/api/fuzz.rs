//! The API's request bodies as the fuzz targets drive them (compiled with `test-support` only):
//! each body goes through the same parse and checks its handler runs before it calls the node,
//! so a body that panics here would panic a handler. No server, no node.

use axum::body::Bytes;

use super::curation::{LabelIn, MergeIn, NotATargetIn, PinIn, SplitIn, checked_mark, parse_body};
use super::extract::parse_json;
use super::hunt::Chunker;
use super::records::{StatusIn, checked_status, new_record};
use super::roster::{BodyForm, RosterBody};
use super::share::{ShareIn, parameters};
use crate::daemon::observation_line;
use crate::import::record_in::RecordIn;

/// The instant the checks take as now: 2027-01-15T08:00:00Z.
const NOW_MS: u64 = 1_800_000_000_000;

/// The bodies a fuzz input can be, by its first byte (modulo their number).
pub const BODIES: [&str; 9] =
    ["record", "status", "share", "label", "pin", "merge", "split", "not_a_target", "roster"];

/// Reads `bytes[1..]` as the body `BODIES[bytes[0] % 9]`, as its handler does, through the
/// handler's checks; `true` when the body is accepted. An empty input is no body.
pub fn request_body(bytes: &[u8]) -> bool {
    let Some((&which, body)) = bytes.split_first() else { return false };
    match BODIES[usize::from(which) % BODIES.len()] {
        "record" => {
            parse_json::<RecordIn>(body).and_then(|input| new_record(input, NOW_MS)).is_ok()
        }
        "status" => {
            parse_json::<StatusIn>(body).and_then(|input| checked_status(input, NOW_MS)).is_ok()
        }
        "share" => parse_json::<ShareIn>(body)
            .and_then(|input| parameters(&input, NOW_MS).map(|_| ()))
            .is_ok(),
        "label" => parse_json::<LabelIn>(body).is_ok(),
        "pin" => parse_body::<PinIn>(body).is_ok(),
        "merge" => parse_json::<MergeIn>(body).is_ok(),
        "split" => parse_json::<SplitIn>(body).is_ok(),
        "not_a_target" => {
            parse_json::<NotATargetIn>(body).and_then(|input| checked_mark(&input)).is_ok()
        }
        _ => roster_body(body),
    }
}

/// A posted roster, as `POST /v1/roster` reads it: its form told by its first byte (no content
/// type), then decoded.
fn roster_body(body: &[u8]) -> bool {
    let form = BodyForm::of(None, body);
    RosterBody { form, bytes: Bytes::copy_from_slice(body) }.decode().is_ok()
}

/// Reads `bytes[1..]` as an observations body (`POST /v1/observations`) arriving in frames of
/// `bytes[0] + 1` bytes: the handler's chunker splits it into numbered lines, which go through
/// the checks the hunt runs on each. Returns the lines accepted.
pub fn observations_body(bytes: &[u8]) -> usize {
    let Some((&frame, body)) = bytes.split_first() else { return 0 };
    let mut chunker = Chunker::new(1);
    let mut full = Vec::new();
    for part in body.chunks(usize::from(frame) + 1) {
        chunker.push_bytes(part, &mut full);
    }
    chunker.finish(&mut full);
    let mut accepted = 0;
    let mut last_line = 0;
    for (number, line) in full.iter().flatten() {
        assert!(*number > last_line, "line numbers rise: {number} after {last_line}");
        last_line = *number;
        let checked = observation_line(*number, line, NOW_MS);
        accepted += usize::from(checked.is_some_and(|result| result.is_ok()));
    }
    accepted
}
