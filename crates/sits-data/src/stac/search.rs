//! STAC API searches: `POST {api}/search`, the pages followed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DataError, Result};

/// A search of a STAC API (`POST {api}/search`), its pages followed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StacSearch {
    /// The API root (`https://earth-search.aws.element84.com/v1`) or its `/search`
    /// endpoint.
    pub api: String,
    /// Collections to search (`sentinel-2-l2a`).
    pub collections: Vec<String>,
    /// `[lon_min, lat_min, lon_max, lat_max]`.
    pub bbox: Option<[f64; 4]>,
    /// An RFC 3339 interval, `2020-01-01/2020-12-31`.
    pub datetime: Option<String>,
    /// Items above this `eo:cloud_cover` are not asked for (a `query` filter).
    pub max_cloud_cover: Option<f64>,
    /// Items per page asked for (default 100).
    pub limit: Option<usize>,
    /// Stop after this many items (default 10,000): a search is refused beyond it.
    pub max_items: Option<usize>,
}

/// Runs `search` and returns its items as one ItemCollection (the `features` of
/// every page, in order), ready to save and read with [`super::read_item_collection`].
/// Pages are followed through their `next` link (GET, or POST with the link's body,
/// merged with the search's when `merge` is set). Errors name the URL and the page.
pub fn search(search: &StacSearch) -> Result<Value> {
    let endpoint = if search.api.trim_end_matches('/').ends_with("/search") {
        search.api.trim_end_matches('/').to_string()
    } else {
        format!("{}/search", search.api.trim_end_matches('/'))
    };
    let mut body = serde_json::json!({ "limit": search.limit.unwrap_or(100) });
    if !search.collections.is_empty() {
        body["collections"] = serde_json::json!(search.collections);
    }
    if let Some(b) = search.bbox {
        body["bbox"] = serde_json::json!(b);
    }
    if let Some(d) = &search.datetime {
        body["datetime"] = serde_json::json!(d);
    }
    if let Some(c) = search.max_cloud_cover {
        body["query"] = serde_json::json!({ "eo:cloud_cover": { "lte": c } });
    }
    let max_items = search.max_items.unwrap_or(10_000);
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| DataError::Argument(format!("HTTP client: {e}")))?;
    let mut features = Vec::new();
    let mut request = Some(("POST".to_string(), endpoint.clone(), Some(body.clone())));
    let mut page = 0;
    while let Some((method, url, payload)) = request.take() {
        page += 1;
        let what = format!("{url} (page {page})");
        let fail = |reason: String| DataError::Field {
            path: PathBuf::from(&what),
            field: "search".into(),
            reason,
        };
        let rb = if method.eq_ignore_ascii_case("POST") {
            client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&payload.unwrap_or(Value::Null)).unwrap_or_default())
        } else {
            client.get(&url)
        };
        let resp = rb.send().map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
        let got = v
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| fail("no `features` in the answer".into()))?;
        features.extend(got.iter().cloned());
        if features.len() > max_items {
            return Err(fail(format!(
                "more than {max_items} items: narrow the search (bbox, datetime, cloud cover) \
                 or raise max_items"
            )));
        }
        let next = v
            .get("links")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|l| l["rel"] == "next"));
        if let (Some(next), false) = (next, got.is_empty()) {
            let href = next["href"]
                .as_str()
                .ok_or_else(|| fail("a next link without href".into()))?;
            let method = next["method"].as_str().unwrap_or("GET").to_string();
            let payload = match next.get("body") {
                Some(b) if next["merge"] == true => {
                    let mut merged = body.clone();
                    if let (Some(m), Some(o)) = (merged.as_object_mut(), b.as_object()) {
                        for (k, x) in o {
                            m.insert(k.clone(), x.clone());
                        }
                    }
                    Some(merged)
                }
                Some(b) => Some(b.clone()),
                None => Some(body.clone()),
            };
            request = Some((method, href.to_string(), payload));
        }
    }
    Ok(serde_json::json!({ "type": "FeatureCollection", "features": features }))
}
