//! Answers too large to build whole: a JSON array written item by item as the client
//! reads it. Each item is serialised when the body is polled for it, so the server
//! never holds the whole encoded answer (a listing with `details` can be megabytes).

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A `200 application/json` answer whose body is the array of `items`, in order.
pub fn json_array<I>(items: I) -> Response
where
    I: Iterator<Item = Value> + Send + 'static,
{
    let mut first = true;
    let mut items = items.fuse();
    let mut closed = false;
    let chunks = std::iter::from_fn(move || {
        if closed {
            return None;
        }
        let mut chunk = Vec::with_capacity(256);
        match items.next() {
            Some(item) => {
                chunk.push(if first { b'[' } else { b',' });
                first = false;
                // A Value always encodes; an error here is impossible, not ignored.
                if serde_json::to_writer(&mut chunk, &item).is_err() {
                    chunk.extend_from_slice(b"null");
                }
            }
            None => {
                closed = true;
                if first {
                    chunk.push(b'[');
                }
                chunk.push(b']');
            }
        }
        Some(Ok::<Bytes, std::convert::Infallible>(Bytes::from(chunk)))
    });
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn arrays_of_none_one_and_many() {
        assert_eq!(text(json_array(std::iter::empty())).await, "[]");
        assert_eq!(
            text(json_array([json!({"a": 1})].into_iter())).await,
            r#"[{"a":1}]"#
        );
        let many = (0..3).map(|i| json!({"i": i, "s": "x,y]"}));
        let out = text(json_array(many)).await;
        let back: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(
            back,
            json!([{"i":0,"s":"x,y]"},{"i":1,"s":"x,y]"},{"i":2,"s":"x,y]"}])
        );
    }
}
