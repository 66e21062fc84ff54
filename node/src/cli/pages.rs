//! Paged listings (`alerts`, `takedowns`): every page's rows gathered, within a bound on pages
//! and rows, each page required to move on past the one before. A node that answers a cursor
//! that does not rise, or more than the bound, is misbehaving or far larger than a terminal
//! listing can hold: either way the listing stops with exit 1 rather than print part of it as
//! if it were all. [`walk`] hands each page's rows on as they arrive, so a listing printed as
//! it goes (`alerts --follow`'s resync snapshot) needs no bound on its total, only the rising
//! cursor.

use std::future::Future;

use serde_json::Value;

use super::{CliError, Exit};

/// Gathers the rows of a paged listing.
#[derive(Debug)]
pub(super) struct Pages {
    what: &'static str,
    rows_field: &'static str,
    cursor_field: &'static str,
    max_pages: usize,
    max_rows: usize,
    pages: usize,
    rows_taken: usize,
    after: u64,
    rows: Vec<Value>,
}

/// Walks a paged listing: asks `fetch` for the page after each cursor (0 first), checks it with
/// `pages`, and hands its rows to `each` before asking for the next, until the last page.
pub(super) async fn walk<Fetch, Page>(
    mut pages: Pages,
    mut fetch: Fetch,
    mut each: impl FnMut(Vec<Value>),
) -> Result<(), CliError>
where
    Fetch: FnMut(u64) -> Page,
    Page: Future<Output = Result<Value, CliError>>,
{
    loop {
        let mut page = fetch(pages.after()).await?;
        let (rows, more) = pages.next_rows(&mut page)?;
        each(rows);
        if !more {
            return Ok(());
        }
    }
}

impl Pages {
    /// A listing of `what` (for messages) whose pages carry their rows in `rows_field` and the
    /// next page's cursor in `cursor_field` (absent or `null` on the last page); at most
    /// `max_pages` pages and `max_rows` rows.
    pub(super) fn new(
        what: &'static str,
        rows_field: &'static str,
        cursor_field: &'static str,
        max_pages: usize,
        max_rows: usize,
    ) -> Self {
        Self {
            what,
            rows_field,
            cursor_field,
            max_pages,
            max_rows,
            pages: 0,
            rows_taken: 0,
            after: 0,
            rows: Vec::new(),
        }
    }

    /// The cursor to ask the next page after (0 for the first page).
    pub(super) fn after(&self) -> u64 {
        self.after
    }

    /// Takes one page (its rows moved out of it): `true` when another page follows. Refused
    /// (exit 1): an answer that is not an object with an array of rows, a cursor that is not
    /// a number or does not rise past the previous one, and a listing past the bounds.
    pub(super) fn take(&mut self, page: &mut Value) -> Result<bool, CliError> {
        let (rows, more) = self.next_rows(page)?;
        self.rows.extend(rows);
        Ok(more)
    }

    /// As [`Pages::take`], but the page's rows are returned rather than gathered.
    fn next_rows(&mut self, page: &mut Value) -> Result<(Vec<Value>, bool), CliError> {
        let misbehaving = |why: &str| {
            CliError::new(
                Exit::Failure,
                format!("the node's answer for {} {why}: the node is misbehaving", self.what),
            )
        };
        let Some(object) = page.as_object_mut() else {
            return Err(misbehaving("is not a JSON object"));
        };
        let Some(Value::Array(rows)) = object.get_mut(self.rows_field).map(Value::take) else {
            return Err(misbehaving(&format!("has no `{}` list", self.rows_field)));
        };
        self.pages += 1;
        self.rows_taken = self.rows_taken.saturating_add(rows.len());
        if self.pages > self.max_pages || self.rows_taken > self.max_rows {
            return Err(CliError::new(
                Exit::Failure,
                format!(
                    "more than {} {} (or {} pages): narrow the listing",
                    self.max_rows, self.what, self.max_pages
                ),
            ));
        }
        match object.get(self.cursor_field) {
            None | Some(Value::Null) => Ok((rows, false)),
            Some(cursor) => match cursor.as_u64() {
                Some(next) if next > self.after => {
                    self.after = next;
                    Ok((rows, true))
                }
                Some(_) => Err(misbehaving(&format!(
                    "names a next page (`{}`) that does not come after the last one",
                    self.cursor_field
                ))),
                None => {
                    Err(misbehaving(&format!("has a `{}` that is not a number", self.cursor_field)))
                }
            },
        }
    }

    /// The rows gathered.
    pub(super) fn into_rows(self) -> Vec<Value> {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pages() -> Pages {
        Pages::new("clocks", "accounts", "next_after", 3, 5)
    }

    #[test]
    fn pages_are_gathered_until_the_last_one() {
        let mut listing = pages();
        assert_eq!(listing.after(), 0);
        let mut first = json!({"accounts": [1, 2], "next_after": 2, "totals": {"accounts": 4}});
        assert!(listing.take(&mut first).unwrap());
        assert_eq!(listing.after(), 2);
        assert_eq!(first["totals"]["accounts"], 4, "the rest of the page is left");
        let mut last = json!({"accounts": [3, 4], "next_after": null});
        assert!(!listing.take(&mut last).unwrap());
        assert_eq!(listing.into_rows(), vec![json!(1), json!(2), json!(3), json!(4)]);
        let mut only = json!({"accounts": []});
        assert!(!pages().take(&mut only).unwrap(), "no cursor: the last page");
    }

    #[test]
    fn a_cursor_that_does_not_rise_is_a_failure_not_the_end() {
        for cursor in [json!(5), json!(4)] {
            let mut listing = pages();
            assert!(listing.take(&mut json!({"accounts": [1], "next_after": 5})).unwrap());
            let error =
                listing.take(&mut json!({"accounts": [2], "next_after": cursor})).unwrap_err();
            assert_eq!(error.exit, Exit::Failure);
            assert!(error.message.contains("misbehaving"), "{}", error.message);
        }
        let error = pages().take(&mut json!({"accounts": [], "next_after": 0})).unwrap_err();
        assert_eq!(error.exit, Exit::Failure, "the first cursor must rise past 0 too");
        let error = pages().take(&mut json!({"accounts": [], "next_after": "7"})).unwrap_err();
        assert_eq!(error.exit, Exit::Failure);
    }

    #[test]
    fn answers_that_are_not_pages_are_failures() {
        for mut answer in [json!([1, 2]), json!({"next_after": 3}), json!({"accounts": {}})] {
            assert_eq!(pages().take(&mut answer).unwrap_err().exit, Exit::Failure, "{answer}");
        }
    }

    /// A fake node: answers each page from `answers` in turn, noting the cursors asked for.
    async fn walk_fake(
        pages: Pages,
        answers: Vec<Value>,
    ) -> (Result<(), CliError>, Vec<u64>, Vec<Vec<Value>>) {
        let mut answers = answers.into_iter();
        let mut asked = Vec::new();
        let mut handed = Vec::new();
        let walked = walk(
            pages,
            |after| {
                asked.push(after);
                std::future::ready(
                    answers
                        .next()
                        .ok_or_else(|| CliError::new(Exit::Failure, "asked past the last page")),
                )
            },
            |rows| handed.push(rows),
        )
        .await;
        (walked, asked, handed)
    }

    #[tokio::test]
    async fn a_walk_hands_each_page_on_as_it_arrives_with_no_bound_on_the_total() {
        let unbounded = || Pages::new("alerts", "accounts", "next_after", usize::MAX, usize::MAX);
        // More pages and rows than `pages()` allows: a walk printing as it goes needs no bound.
        let answers: Vec<Value> = (1..=6)
            .map(|n| json!({"accounts": [n * 10, n * 10 + 1], "next_after": n * 2}))
            .chain([json!({"accounts": [99], "next_after": null})])
            .collect();
        let (walked, asked, handed) = walk_fake(unbounded(), answers).await;
        walked.unwrap();
        assert_eq!(asked, vec![0, 2, 4, 6, 8, 10, 12], "each page after the last cursor");
        assert_eq!(handed.len(), 7, "one hand-over per page");
        assert_eq!(handed[0], vec![json!(10), json!(11)]);
        assert_eq!(handed[6], vec![json!(99)]);
        // The cursor must still rise: the walk stops with exit 1 after the pages before.
        let answers = vec![
            json!({"accounts": [1], "next_after": 5}),
            json!({"accounts": [2], "next_after": 5}),
            json!({"accounts": [3], "next_after": null}),
        ];
        let (walked, asked, handed) = walk_fake(unbounded(), answers).await;
        let error = walked.unwrap_err();
        assert_eq!(error.exit, Exit::Failure);
        assert!(error.message.contains("misbehaving"), "{}", error.message);
        assert_eq!(asked, vec![0, 5]);
        assert_eq!(handed, vec![vec![json!(1)]], "the bad page is not handed on");
        // A bounded walk keeps its bound.
        let answers: Vec<Value> =
            (1..=3).map(|n| json!({"accounts": [1, 2, 3], "next_after": n})).collect();
        let (walked, _, handed) = walk_fake(pages(), answers).await;
        assert!(walked.unwrap_err().message.contains("more than 5 clocks"));
        assert_eq!(handed.len(), 1);
    }

    #[test]
    fn the_listing_is_bounded_in_rows_and_pages() {
        let mut listing = pages();
        assert!(listing.take(&mut json!({"accounts": [1, 2, 3], "next_after": 3})).unwrap());
        let error = listing.take(&mut json!({"accounts": [4, 5, 6], "next_after": 6})).unwrap_err();
        assert_eq!(error.exit, Exit::Failure);
        assert!(error.message.contains("more than 5 clocks"), "{}", error.message);
        let mut listing = pages();
        for next in 1..=3 {
            assert!(listing.take(&mut json!({"accounts": [], "next_after": next})).unwrap());
        }
        let error = listing.take(&mut json!({"accounts": [], "next_after": 4})).unwrap_err();
        assert_eq!(error.exit, Exit::Failure, "a fourth page");
    }
}
