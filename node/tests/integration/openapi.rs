//! The OpenAPI document against the real router: every route `node/src/api.rs` serves is
//! documented and every documented route is served (parity both ways), and every documented
//! example (JSON request bodies and query parameters) passes the real request parsing.

use std::collections::BTreeSet;
use std::time::Duration;

use crossmatch_node::api;
use crossmatch_node::test_support::api_node::{
    ADMIN_TOKEN as ADMIN, ANALYST_TOKEN, MONITOR_TOKEN, api_members,
};
use crossmatch_node::test_support::http;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// The `(method, path)` pairs of the `.route(` calls in the router's source.
fn served_in_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/api.rs");
    let mut pairs = BTreeSet::new();
    for piece in source.split(".route(").skip(1) {
        let piece = piece.trim_start();
        let Some(rest) = piece.strip_prefix('"') else { continue };
        let Some((path, rest)) = rest.split_once('"') else { continue };
        // The method router: up to the call's closing parenthesis.
        let mut depth = 1usize;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(at, _)| at);
        let methods = &rest[..end];
        for method in ["get", "post", "delete", "put", "patch"] {
            let called = methods.match_indices(&format!("{method}(")).any(|(at, _)| {
                at == 0 || !methods[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if called {
                pairs.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    pairs
}

fn document() -> Value {
    serde_json::from_str(api::openapi_document()).expect("the document is JSON")
}

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            pairs.insert((method.to_uppercase(), path.clone()));
        }
    }
    pairs
}

/// The operation's JSON request example, as bytes.
fn body_of(operation: &Value) -> Option<Vec<u8>> {
    let body = &operation["requestBody"]["content"]["application/json"]["example"];
    (!body.is_null()).then(|| serde_json::to_vec(body).unwrap())
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
}

#[test]
fn the_document_gives_each_route_its_own_success_and_error_codes() {
    let document = document();
    let codes = |method: &str, path: &str| -> BTreeSet<String> {
        let responses = &document["paths"][path][method]["responses"];
        responses.as_object().expect("responses").keys().cloned().collect()
    };
    let set = |codes: &[&str]| codes.iter().map(|c| (*c).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(codes("get", "/livez"), set(&["200"]));
    assert_eq!(codes("get", "/readyz"), set(&["200", "503"]));
    assert!(codes("post", "/v1/records").contains("201"));
    assert!(!codes("post", "/v1/records").contains("200"));
    assert!(codes("delete", "/v1/records/{id}").contains("204"));
    let upload = codes("post", "/v1/imports");
    assert!(["202", "200", "400", "401", "403", "413", "503"].iter().all(|c| upload.contains(*c)));
    let undo = codes("post", "/v1/imports/{id}/undo");
    assert!(["202", "404", "409"].iter().all(|c| undo.contains(*c)), "{undo:?}");
    assert!(!undo.contains("200"));
    let accounts = &document["paths"]["/v1/analytics/accounts"]["get"]["parameters"];
    let names: BTreeSet<&str> =
        accounts.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains("lang") && names.contains("community"), "{names:?}");
}

#[test]
fn every_served_route_is_documented_and_every_documented_one_served() {
    let served = served_in_source();
    assert!(served.len() >= 30, "the router's source was not read: {served:?}");
    assert!(served.contains(&("GET".into(), "/v1/alerts/stream".into())));
    assert!(served.contains(&("DELETE".into(), "/v1/records/{id}".into())));
    let documented = documented(&document());
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not documented: {undocumented:?}");
    assert!(unserved.is_empty(), "documented but not served: {unserved:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_every_documented_route_and_accepts_every_example() {
    tokio::time::timeout(LIMIT, async {
        let f = api_members("openapi").await;
        let port = f.ports[0];
        let document = document();
        for (method, path) in documented(&document) {
            let operation = &document["paths"][&path][method.to_lowercase()];
            let public = operation["security"].is_null();
            let reply = http::request_off_workers(
                port,
                &method,
                &concrete(&path),
                None,
                "application/json",
                None,
            )
            .await;
            if public {
                assert_eq!(reply.status, 200, "{method} {path}");
            } else {
                assert_eq!(reply.status, 401, "{method} {path} without a token");
            }
        }
        // The document itself, served.
        let served = http::request_off_workers(
            port,
            "GET",
            "/v1/openapi.json",
            Some(ADMIN),
            "application/json",
            None,
        )
        .await;
        assert_eq!(served.status, 200);
        assert_eq!(served.json(), document);
        // Every example passes the real parsing: a JSON body, and the query parameters.
        let (mut checked, mut unknown) = (0, 0);
        for (method, path) in documented(&document) {
            let operation = &document["paths"][&path][method.to_lowercase()];
            let body = &operation["requestBody"]["content"]["application/json"]["example"];
            let query: Vec<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| {
                    format!("{}={}", p["name"].as_str().unwrap(), p["example"].as_str().unwrap())
                })
                .collect();
            // The stream's answer never ends; its `after` is checked by the stream tests.
            let streams = operation["responses"]["200"]["content"]["text/event-stream"].is_object();
            if streams || (body.is_null() && query.is_empty()) {
                continue;
            }
            let mut target = concrete(&path);
            if !query.is_empty() {
                target = format!("{target}?{}", query.join("&"));
            }
            let body = (!body.is_null()).then(|| serde_json::to_vec(body).unwrap());
            let reply = http::request_off_workers(
                port,
                &method,
                &target,
                Some(ADMIN),
                "application/json",
                body,
            )
            .await;
            // Parsed, not failed, and answered with one of the route's documented codes.
            let documented_codes = operation["responses"].as_object().unwrap();
            assert!(
                reply.status != 400
                    && reply.status < 500
                    && documented_codes.contains_key(&reply.status.to_string()),
                "{method} {target}: {} {}",
                reply.status,
                reply.body
            );
            checked += 1;
            // The documented query set is the handler's: one parameter more is refused.
            if !query.is_empty() {
                let target = format!("{target}&not_a_parameter=1");
                let body = body_of(operation);
                let reply = http::request_off_workers(
                    port,
                    &method,
                    &target,
                    Some(ADMIN),
                    "application/json",
                    body,
                )
                .await;
                assert_eq!(reply.status, 400, "{method} {target}: {}", reply.body);
                unknown += 1;
            }
        }
        assert!(checked >= 10, "only {checked} examples");
        assert!(unknown >= 8, "only {unknown} query sets");
        // Every route with a role refuses a token one role below it `403`; the documented
        // success and error codes are the route's.
        let mut below = 0;
        for (method, path) in documented(&document) {
            let operation = &document["paths"][&path][method.to_lowercase()];
            let description = operation["description"].as_str().unwrap_or_default();
            let token = if description.starts_with("Role: admin") {
                ANALYST_TOKEN
            } else if description.starts_with("Role: analyst") {
                MONITOR_TOKEN
            } else {
                continue;
            };
            let reply = http::request_off_workers(
                port,
                &method,
                &concrete(&path),
                Some(token),
                "application/json",
                body_of(operation),
            )
            .await;
            assert_eq!(reply.status, 403, "{method} {path} one role below: {}", reply.body);
            below += 1;
        }
        assert!(below >= 25, "only {below} routes checked one role below");
    })
    .await
    .expect("the OpenAPI checks finished in time");
}

#[test]
fn api_doc_prints_the_served_document_offline() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crossmatch"))
        .arg("api-doc")
        .output()
        .expect("crossmatch api-doc runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("the output is JSON");
    assert_eq!(printed, document());
    assert!(printed["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
}
