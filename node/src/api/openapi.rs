//! The API's OpenAPI 3.1 document, served at `GET /v1/openapi.json` (monitor) and printed by
//! `crossmatch api-doc`. Built once with utoipa from [`ROUTES`], the table of every route the
//! router serves with its role, query parameters and examples, and the record schema from the
//! request type itself (`import::record_in::RecordIn`). The integration test `openapi` checks
//! that the table and the router agree both ways and that every example passes the real
//! request parsing. Roles, limits and privacy rules are prose in docs/API.md.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::PartialSchema;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApiBuilder, PathsBuilder,
    Ref, Required, ResponseBuilder, Type,
};

use super::auth::{Role, User};
use super::error::ApiResult;
use super::export::STIX_MEDIA_TYPE;
use crate::import::record_in::{IdentifierIn, RecordIn};

/// A request body's example.
pub type Example = fn() -> Value;

/// A documented route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{id}` parameters.
    pub path: &'static str,
    /// The least role it needs; `None`: no token.
    pub role: Option<&'static str>,
    /// What it does.
    pub summary: &'static str,
    /// Its query parameters: (name, description, example).
    pub query: &'static [(&'static str, &'static str, &'static str)],
    /// The request body's media type and example, if it takes one.
    pub body: Option<(&'static str, Example)>,
    /// The answer's media type.
    pub answer: &'static str,
    /// Its success codes, the usual one first (a dry run's or a preview's `200` after).
    pub status: &'static [u16],
    /// The error codes it answers besides `401` and `403` (which every route with a role
    /// answers).
    pub errors: &'static [u16],
}

const JSON: &str = "application/json";

fn record_example() -> Value {
    json!({
        "identifiers": [
            {"kind": "account", "platform": "x", "value": "example_handle"},
            {"kind": "phone", "region": "FR", "value": "06 12 34 56 78"}
        ],
        "category": "propaganda", "handling": "H2", "evaluation": "B2",
        "notes": "", "expires_in_days": 90, "share": true
    })
}

/// Every route the router serves.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/livez",
        role: None,
        summary: "Liveness: the process answers.",
        query: &[],
        body: None,
        answer: "text/plain",
        status: &[200],
        errors: &[],
    },
    Route {
        method: "GET",
        path: "/readyz",
        role: None,
        summary: "Readiness: the node serves its mesh and store.",
        query: &[],
        body: None,
        answer: "text/plain",
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "GET",
        path: "/metrics",
        role: Some("monitor"),
        summary: "Prometheus metrics (text exposition format).",
        query: &[],
        body: None,
        answer: "text/plain",
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "GET",
        path: "/v1/openapi.json",
        role: Some("monitor"),
        summary: "This document.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "GET",
        path: "/v1/status",
        role: Some("monitor"),
        summary: "The node's status: members, feeds, queues, alarms.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "POST",
        path: "/v1/records",
        role: Some("analyst"),
        summary: "Adds a record: `201 {\"id\"}`. Identifiers are canonicalised; a refusal names the identifier's index and the rule, never the value.",
        query: &[],
        body: Some((JSON, record_example)),
        answer: JSON,
        status: &[201],
        errors: &[400, 413, 503],
    },
    Route {
        method: "GET",
        path: "/v1/records/{id}",
        role: Some("analyst"),
        summary: "Reads a record with its raw identifiers (audited), `pending_share` and the import that made it.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 404, 503],
    },
    Route {
        method: "DELETE",
        path: "/v1/records/{id}",
        role: Some("analyst"),
        summary: "Removes a record: `204`; its tokens are retracted when no other shared record holds them.",
        query: &[("reason", "`no_longer_held` (default) or `erroneous`.", "no_longer_held")],
        body: None,
        answer: JSON,
        status: &[204],
        errors: &[400, 404, 503],
    },
    Route {
        method: "POST",
        path: "/v1/records/{id}/status",
        role: Some("analyst"),
        summary: "Publishes a referral or takedown status of a record: `204`.",
        query: &[],
        body: Some((JSON, || json!({"status": "referred"}))),
        answer: JSON,
        status: &[204],
        errors: &[400, 404, 409, 413, 503],
    },
    Route {
        method: "GET",
        path: "/v1/alerts",
        role: Some("analyst"),
        summary: "Alerts, newest first, a page at a time.",
        query: &[
            ("state", "`open`, `acknowledged` or `closed`.", "open"),
            ("since_ms", "Updated at or after (Unix ms).", "0"),
            ("after_id", "The page after this alert id.", "1"),
            ("limit", "Alerts per page.", "50"),
        ],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 503],
    },
    Route {
        method: "POST",
        path: "/v1/alerts/{id}/ack",
        role: Some("analyst"),
        summary: "Acknowledges an alert: `204`.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[204],
        errors: &[400, 404, 503],
    },
    Route {
        method: "GET",
        path: "/v1/alerts/stream",
        role: Some("analyst"),
        summary: "Live alerts as Server-Sent Events from the durable alert event log: events `hello` (first; data `{\"cursor\",\"head\"}`), `alert.opened`, `alert.updated`, `alert.closed`, `alert.reopened`, `alert.acknowledged`, `takedown.warning` and `resync` (the cursor is gone: read the alerts page again), each with the id to resume after (`after` or `Last-Event-ID`), and heartbeat comments.",
        query: &[("after", "The event id to resume after.", "0")],
        body: None,
        answer: "text/event-stream",
        status: &[200],
        errors: &[400, 503],
    },
    Route {
        method: "GET",
        path: "/v1/forks",
        role: Some("admin"),
        summary: "Fork evidence: two signed batches of one origin at one height.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "POST",
        path: "/v1/observations",
        role: Some("analyst"),
        summary: "Posts observed on platforms, as JSON lines; refusals by line number.",
        query: &[("first_line", "The number of the body's first line.", "1")],
        body: Some(("application/x-ndjson", || json!(""))),
        answer: JSON,
        status: &[200],
        errors: &[400, 413, 415, 503],
    },
    Route {
        method: "GET",
        path: "/v1/analytics/accounts",
        role: Some("analyst"),
        summary: "Accounts ranked by the hunt's analytics.",
        query: &[
            ("sort", "`activity`, `influence` or `priority`.", "priority"),
            ("platform", "A platform.", "x"),
            ("lang", "A language code the accounts write in.", "en"),
            ("community", "A community id: only its members.", "1"),
            ("limit", "Accounts per page.", "10"),
        ],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 503],
    },
    Route {
        method: "GET",
        path: "/v1/analytics/communities",
        role: Some("analyst"),
        summary: "Communities found in the observations.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "GET",
        path: "/v1/analytics/communities/{id}",
        role: Some("analyst"),
        summary: "One community with its members.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 404, 503],
    },
    Route {
        method: "POST",
        path: "/v1/analytics/communities/{id}/label",
        role: Some("analyst"),
        summary: "Labels a community.",
        query: &[],
        body: Some((JSON, || json!({"label": "propaganda"}))),
        answer: JSON,
        status: &[200],
        errors: &[400, 404, 413, 503],
    },
    Route {
        method: "POST",
        path: "/v1/analytics/communities/{id}/pin",
        role: Some("analyst"),
        summary: "Pins or unpins a community.",
        query: &[],
        body: Some((JSON, || json!({"pinned": true}))),
        answer: JSON,
        status: &[200],
        errors: &[400, 404, 413, 503],
    },
    Route {
        method: "POST",
        path: "/v1/analytics/communities/{id}/merge",
        role: Some("analyst"),
        summary: "Merges another community into this one.",
        query: &[],
        body: Some((JSON, || json!({"with": 2}))),
        answer: JSON,
        status: &[200],
        errors: &[400, 404, 409, 413, 503],
    },
    Route {
        method: "POST",
        path: "/v1/analytics/communities/{id}/split",
        role: Some("analyst"),
        summary: "Splits accounts off a community.",
        query: &[],
        body: Some((JSON, || json!({"accounts": ["x:example_handle"]}))),
        answer: JSON,
        status: &[200],
        errors: &[400, 404, 409, 413, 503],
    },
    Route {
        method: "POST",
        path: "/v1/analytics/not-a-target",
        role: Some("analyst"),
        summary: "Marks an account as not a target (or removes the mark).",
        query: &[],
        body: Some((
            JSON,
            || json!({"account": "example_handle", "platform": "x", "category": "journalist"}),
        )),
        answer: JSON,
        status: &[200],
        errors: &[400, 413, 503],
    },
    Route {
        method: "GET",
        path: "/v1/analytics/suggestions",
        role: Some("analyst"),
        summary: "Suggested accounts for labelled communities.",
        query: &[("community", "A community id.", "1"), ("limit", "Suggestions.", "10")],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 503],
    },
    Route {
        method: "POST",
        path: "/v1/analytics/communities/{id}/share",
        role: Some("analyst"),
        summary: "Previews, then shares, a community's accounts as records.",
        query: &[],
        body: Some((
            JSON,
            || json!({"preview": true, "handling": "H2", "category": "propaganda", "evaluation": "B2", "expires_in_days": 90}),
        )),
        answer: JSON,
        status: &[201, 200],
        errors: &[400, 404, 409, 413, 503],
    },
    Route {
        method: "GET",
        path: "/v1/analytics/overlaps",
        role: Some("analyst"),
        summary: "Shared communities that overlap other members' holdings.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "GET",
        path: "/v1/analytics/successors",
        role: Some("analyst"),
        summary: "Likely successors of removed accounts.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[503],
    },
    Route {
        method: "GET",
        path: "/v1/analytics/export",
        role: Some("analyst"),
        summary: "The analytics as GraphML, GEXF or CSV.",
        query: &[
            ("format", "`graphml`, `gexf`, `accounts.csv` or `links.csv`.", "graphml"),
            ("community", "A community id: only its members.", "1"),
        ],
        body: None,
        answer: "application/octet-stream",
        status: &[200],
        errors: &[400, 404, 503],
    },
    Route {
        method: "POST",
        path: "/v1/imports",
        role: Some("analyst"),
        summary: "Imports a CSV, JSON-lines or STIX 2.1 file (the body, any media type, up to \
                  256 MiB) as a job: `202 {\"id\", \"state\": \"queued\"}` and `Location`; with \
                  `dry_run=true`, `200` and the plan, nothing written. Refused rows are named by \
                  position and rule, never by value.",
        query: &[
            ("share", "Required: `true` shares the records, `false` only watches them.", "true"),
            ("format", "`csv`, `jsonl` or `stix`; told from the content when absent.", "jsonl"),
            (
                "source",
                "The file's source label (CSV and JSON lines), 1 to 64 of `A-Za-z0-9._-`.",
                "leak2015",
            ),
            ("category", "The default category of rows without one.", "propaganda"),
            ("handling", "The default handling code, `H0` to `H3`.", "H1"),
            ("evaluation", "The default evaluation, `A1` to `X4`.", "B2"),
            ("expires_in_days", "The default expiry, in days (at least 1).", "365"),
            ("spread", "Share past today's quota over the following days.", "false"),
            (
                "override",
                "Admin: markings to share anyway, of `red`, `amber-strict`, `unmarked`.",
                "red",
            ),
            ("dry_run", "Plan and answer the summary; write and publish nothing.", "true"),
        ],
        body: Some(("application/octet-stream", || json!(""))),
        answer: JSON,
        status: &[202, 200],
        errors: &[400, 413, 503],
    },
    Route {
        method: "GET",
        path: "/v1/imports",
        role: Some("analyst"),
        summary: "Past and running imports, a page at a time, in id order.",
        query: &[
            ("after", "The last id of the previous page.", "0"),
            ("limit", "At most this many (1 to 500; 100 by default).", "100"),
        ],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 503],
    },
    Route {
        method: "GET",
        path: "/v1/imports/{id}",
        role: Some("analyst"),
        summary: "One import: its state, progress, summary, quota and refused rows.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 404, 503],
    },
    Route {
        method: "POST",
        path: "/v1/imports/{id}/undo",
        role: Some("analyst"),
        summary: "Undoes an import: `202`; removes what it created and nobody edited since \
                  (edited records too with `force=true`), retracting as `erroneous`.",
        query: &[("force", "Also remove records edited since the import.", "false")],
        body: None,
        answer: JSON,
        status: &[202],
        errors: &[400, 404, 409, 503],
    },
    Route {
        method: "GET",
        path: "/v1/export/stix",
        role: Some("admin"),
        summary: "The unit's records (observables and indicators) and alerts (sightings; none \
                  from a counterpart's H2 add) as one STIX 2.1 bundle, streamed and audited \
                  with its counts before the first byte. Neither `records` nor `alerts`: both. \
                  With `since_ms`, what went since comes as revoked. At most two at once, else \
                  503 `busy`.",
        query: &[
            ("records", "The records, as indicators.", "true"),
            ("alerts", "The alerts, as sightings.", "true"),
            ("since_ms", "Only what changed since (Unix ms); what went comes revoked.", "0"),
            ("tokens", "Each indicator's tokens, in the tokens extension.", "false"),
        ],
        body: None,
        answer: STIX_MEDIA_TYPE,
        status: &[200],
        errors: &[400, 503],
    },
    Route {
        method: "GET",
        path: "/v1/takedowns",
        role: Some("analyst"),
        summary: "Takedown clocks, a page at a time.",
        query: &[
            (
                "state",
                "`pending`, `referred`, `ordered`, `removed`, `overdue`, `removal_contradicted` or `reinstated`.",
                "pending",
            ),
            ("after", "The page after this record id.", "1"),
            ("limit", "Clocks per page.", "50"),
        ],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[400, 503],
    },
    Route {
        method: "GET",
        path: "/v1/roster",
        role: Some("monitor"),
        summary: "The roster the node runs.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[404, 503],
    },
    Route {
        method: "POST",
        path: "/v1/roster",
        role: Some("admin"),
        summary: "Adopts a signed roster as the next version.",
        query: &[],
        body: Some(("application/octet-stream", || json!(""))),
        answer: JSON,
        status: &[200],
        errors: &[400, 409, 413, 503],
    },
    Route {
        method: "POST",
        path: "/v1/secret",
        role: Some("admin"),
        summary: "Delivers a new epoch's sealed secret.",
        query: &[],
        body: Some(("application/octet-stream", || json!(""))),
        answer: JSON,
        status: &[200],
        errors: &[400, 409, 413, 503],
    },
    Route {
        method: "GET",
        path: "/v1/peers",
        role: Some("monitor"),
        summary: "The members as this node sees them.",
        query: &[],
        body: None,
        answer: JSON,
        status: &[200],
        errors: &[503],
    },
];

/// The document as JSON text, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::to_string_pretty(&build()).unwrap_or_else(|_| String::from("{}"))
    })
}

/// What a success code means.
fn success(status: u16) -> &'static str {
    match status {
        201 => "Created.",
        202 => "Accepted: the work goes on in the node.",
        204 => "Done; no content.",
        _ => "Success.",
    }
}

/// What an error code means; the body is `{"error":{"code","message"}}`, never echoing input.
fn failure(status: u16) -> &'static str {
    match status {
        400 => "Refused input (the code names the rule); an unknown query parameter too.",
        404 => "No such object.",
        409 => {
            "Its state forbids it now; the code says why (`import_running`, `not_undoable`, \
                `conflict`, `preview_unknown`, `unknown_epoch`, `no_roster`)."
        }
        413 => "The body is over the route's limit (`too_large`).",
        415 => "The body's media type is not the route's.",
        503 => "Busy, timed out, stopping, or not ready; try again later.",
        _ => "An error.",
    }
}

fn build() -> utoipa::openapi::OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let method = match route.method {
            "POST" => HttpMethod::Post,
            "DELETE" => HttpMethod::Delete,
            _ => HttpMethod::Get,
        };
        let role = match route.role {
            Some(role) => format!("Role: {role} or above."),
            None => "No token.".to_owned(),
        };
        let mut operation =
            OperationBuilder::new().summary(Some(route.summary)).description(Some(role));
        for status in route.status {
            let mut answer = ResponseBuilder::new().description(success(*status));
            if *status != 204 {
                answer = answer.content(route.answer, ContentBuilder::new().build());
            }
            operation = operation.response(status.to_string(), answer.build());
        }
        for status in route.errors {
            operation = operation.response(
                status.to_string(),
                ResponseBuilder::new().description(failure(*status)).build(),
            );
        }
        if route.role.is_some() {
            operation = operation
                .response(
                    "401",
                    ResponseBuilder::new().description("No or a wrong bearer token.").build(),
                )
                .response(
                    "403",
                    ResponseBuilder::new()
                        .description("The token's role is below the route's.")
                        .build(),
                )
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        if route.path.contains("{id}") {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .example(Some(json!("1"))),
            );
        }
        for (name, description, example) in route.query {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .example(Some(json!(example))),
            );
        }
        if let Some((media, example)) = route.body {
            let mut content = ContentBuilder::new();
            if media == JSON {
                content = content.example(Some(example()));
                if route.path == "/v1/records" {
                    content = content.schema(Some(Ref::from_schema_name("RecordIn")));
                }
            }
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .content(media, content.build())
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        paths = paths.path(route.path, PathItem::new(method, operation.build()));
    }
    let components = ComponentsBuilder::new()
        .schema("RecordIn", RecordIn::schema())
        .schema("IdentifierIn", IdentifierIn::schema())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("crossmatch node API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The local HTTP API of a crossmatch node. Roles, limits and privacy rules: \
                     docs/API.md.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// `GET /v1/openapi.json` (monitor).
pub(super) async fn openapi(user: User) -> ApiResult<Response> {
    user.require(Role::Monitor)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], document()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_a_bearer_scheme_and_the_record_schema() {
        let document: Value = serde_json::from_str(document()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        let record = &document["components"]["schemas"]["RecordIn"];
        assert!(record["properties"]["identifiers"].is_object(), "{record}");
        let stream = &document["paths"]["/v1/alerts/stream"]["get"];
        assert!(stream["responses"]["200"]["content"]["text/event-stream"].is_object());
        assert!(stream["summary"].as_str().unwrap().contains("alert.opened"));
        let delete = &document["paths"]["/v1/records/{id}"];
        assert!(delete["get"].is_object() && delete["delete"].is_object());
    }
}
