//! A STAC API search, its pages followed, against a small API served on 127.0.0.1
//! by the test (the STAC fixture's items over three pages: a POST `next` link with a
//! body to merge, then a GET one). The items found make the same cube as the saved
//! ItemCollection.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use serde_json::{json, Value};
use sits_data::stac::{read_item_collection, search, stac_cube, StacSearch};

mod common;
use common::{stac_dir as dir, stac_options};

type Page = (&'static str, &'static str, u16, Value);

/// Serves the pages `make(base URL)` gives (method, path, status, answer), one
/// connection each, in order; returns the base URL and the requests' JSON bodies.
fn serve(make: impl FnOnce(&str) -> Vec<Page>) -> (String, std::thread::JoinHandle<Vec<Value>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let pages = make(&base);
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for (method, path, status, answer) in pages {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(&format!("{method} {path} ")), "{line}");
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            bodies.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let text = answer.to_string();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/geo+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
            .unwrap();
        }
        bodies
    });
    (base, handle)
}

#[test]
fn a_paged_search_finds_the_items_of_the_saved_collection() {
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("items.json")).unwrap()).unwrap();
    // the assets by absolute path, as an API gives URLs
    let mut features = saved["features"].as_array().unwrap().clone();
    for f in &mut features {
        for (_, a) in f["assets"].as_object_mut().unwrap() {
            let href = dir().join(a["href"].as_str().unwrap());
            a["href"] = json!(href.to_str().unwrap());
        }
    }
    let page = |from: usize, to: usize, next: Value| json!({"type": "FeatureCollection", "features": features[from..to], "links": next});
    let (base, server) = serve(|base| {
        vec![
            (
                "POST",
                "/search",
                200,
                page(
                    0,
                    2,
                    json!([{"rel": "next", "href": format!("{base}/search"), "method": "POST", "body": {"token": "p2"}, "merge": true}]),
                ),
            ),
            (
                "POST",
                "/search",
                200,
                page(
                    2,
                    4,
                    json!([{"rel": "next", "href": format!("{base}/page3")}]),
                ),
            ),
            (
                "GET",
                "/page3",
                200,
                page(
                    4,
                    5,
                    json!([{"rel": "self", "href": format!("{base}/page3")}]),
                ),
            ),
        ]
    });
    let found = search(&StacSearch {
        api: base,
        collections: vec!["sentinel-2-l2a".into()],
        bbox: Some([11.99, 46.0, 12.01, 46.01]),
        datetime: Some("2020-01-01/2021-12-31".into()),
        max_cloud_cover: Some(40.0),
        limit: Some(2),
        max_items: None,
    })
    .unwrap();
    let bodies = server.join().unwrap();
    // the search, then the merged body with the next page's token, then a GET
    assert_eq!(bodies[0]["collections"], json!(["sentinel-2-l2a"]));
    assert_eq!(bodies[0]["query"]["eo:cloud_cover"]["lte"], json!(40.0));
    assert_eq!(bodies[0]["limit"], 2);
    assert_eq!(bodies[1]["token"], "p2");
    assert_eq!(bodies[1]["bbox"], bodies[0]["bbox"]);
    assert!(bodies[2].is_null());

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("found.json");
    std::fs::write(&file, serde_json::to_vec(&found).unwrap()).unwrap();
    let ids: Vec<String> = read_item_collection(&file)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    let o = stac_options();
    let from_search = stac_cube(&file, &o).unwrap();
    let from_saved = stac_cube(&dir().join("items.json"), &o).unwrap();
    assert_eq!(from_search.shape(), from_saved.shape());
    assert!(from_search
        .values()
        .iter()
        .zip(from_saved.values().iter())
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn a_failing_api_is_an_error_naming_the_url_and_page() {
    let (base, server) = serve(|_| vec![("POST", "/search", 503, json!({"detail": "busy"}))]);
    let e = search(&StacSearch {
        api: format!("{base}/search"),
        ..StacSearch::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&base) && e.contains("page 1") && e.contains("503"),
        "{e}"
    );
    server.join().unwrap();
}
