//! klugman over real HTTP against a tiny loopback server that records each request
//! line and answers with a canned response.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// A canned answer: status line, content type, body.
#[derive(Clone)]
struct Reply {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

fn json(status: &'static str, body: &str) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
    }
}

/// Serves `replies` in order, one per connection, recording request lines.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for reply in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                serve(stream, &reply, &log);
            }
        });
        Server { url, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, reply: &Reply, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    log.lock().unwrap().push(line.trim_end().to_string());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
            break;
        }
    }
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&reply.body).unwrap();
}

fn run(args: &[&str]) -> (Result<(), klugman::Error>, String) {
    let mut out = Vec::new();
    let result = klugman::run(args.iter().copied(), &mut out);
    (result, String::from_utf8(out).unwrap())
}

const COUNT_TABLE: &str = "+----------+-------+\n\
                           | Property | Value |\n\
                           +----------+-------+\n\
                           |  count   | 42571 |\n\
                           +----------+-------+\n";

#[test]
fn streams_count_end_to_end() {
    let server = Server::start(vec![json("200 OK", r#"[{"count": 42571}]"#)]);
    let (result, out) = run(&[&server.url, "streams", "--count", "--state", "completed"]);
    result.unwrap();
    assert_eq!(out, COUNT_TABLE);
    assert_eq!(
        server.requests(),
        ["GET /v1/streams/count?state=completed HTTP/1.1"]
    );
}

#[test]
fn version_selects_the_path_prefix() {
    let server = Server::start(vec![json("200 OK", "[]")]);
    let url = format!("{}/", server.url);
    let (result, out) = run(&[&url, "--version", "2", "events", "--name", "a b"]);
    result.unwrap();
    assert_eq!(out, "");
    assert_eq!(
        server.requests(),
        ["GET /v2/events?event_name=a+b HTTP/1.1"]
    );
}

#[test]
fn single_event_object_renders() {
    let server = Server::start(vec![json(
        "200 OK",
        r#"{"message_id": "m1", "timestamp": {"__type__": "datetime", "datetime": "2015-04-22T21:46:05"}}"#,
    )]);
    let (result, out) = run(&[&server.url, "events", "--msg_id", "m1"]);
    result.unwrap();
    assert_eq!(
        out,
        "+------------+---------------------+\n\
         |  Property  |        Value        |\n\
         +------------+---------------------+\n\
         | message_id |          m1         |\n\
         | timestamp  | 2015-04-22 21:46:05 |\n\
         +------------+---------------------+\n"
    );
    assert_eq!(server.requests(), ["GET /v1/events/m1 HTTP/1.1"]);
}

#[test]
fn json_prints_the_server_answer() {
    let body = r#"[{"_mark": "1f", "id": 1, "first_event": {"__type__": "datetime", "datetime": "2015-01-01T00:00:00"}}]"#;
    let server = Server::start(vec![json("200 OK", body)]);
    let (result, out) = run(&[&server.url, "--json", "streams", "--details"]);
    result.unwrap();
    assert_eq!(out, format!("{body}\n"));
    assert_eq!(server.requests(), ["GET /v1/streams?details=True HTTP/1.1"]);
}

#[test]
fn debug_prints_the_request_first() {
    let server = Server::start(vec![json("200 OK", r#"[{"count": 42571}]"#)]);
    let (result, out) = run(&[&server.url, "--debug", "streams", "--count", "--name", "t"]);
    result.unwrap();
    let expected = format!(
        "URL: {}/v1/streams/count\n   : name='t'\n{COUNT_TABLE}",
        server.url
    );
    assert_eq!(out, expected);
}

#[test]
fn server_errors_are_one_clear_message() {
    let server = Server::start(vec![
        json("404 Not Found", r#"{"message": "no stream 99"}"#),
        Reply {
            status: "500 Internal Server Error",
            content_type: "text/plain",
            body: b"database is down\n".to_vec(),
        },
        json(
            "400 Bad Request",
            r#"{"title": "Invalid parameter", "description": "bad state"}"#,
        ),
    ]);
    let (result, _) = run(&[&server.url, "streams", "--id", "99"]);
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}/v1/streams/99 failed: 404 Not Found: no stream 99",
            server.url
        )
    );
    let (result, _) = run(&[&server.url, "events"]);
    assert!(result
        .unwrap_err()
        .to_string()
        .ends_with("failed: 500 Internal Server Error: database is down"));
    let (result, _) = run(&[&server.url, "events"]);
    assert!(result
        .unwrap_err()
        .to_string()
        .ends_with("failed: 400 Bad Request: Invalid parameter: bad state"));
}

#[test]
fn non_json_success_is_reported() {
    let server = Server::start(vec![Reply {
        status: "200 OK",
        content_type: "text/html",
        body: b"<html>proxy login</html>".to_vec(),
    }]);
    let (result, _) = run(&[&server.url, "events"]);
    let err = result.unwrap_err();
    assert!(matches!(err, klugman::Error::BadResponse { .. }), "{err}");
    assert!(
        err.to_string().contains("<html>proxy login</html>"),
        "{err}"
    );
}

#[test]
fn connection_refused_is_reported() {
    // Bind then drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (result, _) = run(&[&url, "streams"]);
    let err = result.unwrap_err();
    assert!(matches!(err, klugman::Error::Connect { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot reach {url}/v1/streams: ")),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
}

#[test]
fn https_urls_are_supported() {
    // A plain-HTTP server behind an https:// URL: the TLS handshake must be attempted
    // (and fail cleanly), proving TLS support is built in.
    let server = Server::start(vec![json("200 OK", "[]")]);
    let url = server.url.replace("http://", "https://");
    let (result, _) = run(&[&url, "streams"]);
    let err = result.unwrap_err();
    assert!(matches!(err, klugman::Error::Connect { .. }), "{err}");
}

#[test]
fn archives_list_uses_v2() {
    let server = Server::start(vec![json(
        "200 OK",
        r#"[{"id": "a1", "filename": "events_2015_04_22.dat"}]"#,
    )]);
    let (result, out) = run(&[&server.url, "archives"]);
    result.unwrap();
    assert_eq!(server.requests(), ["GET /v2/archives HTTP/1.1"]);
    assert_eq!(
        out,
        "+----------+-----------------------+\n\
         | Property |         Value         |\n\
         +----------+-----------------------+\n\
         |    id    |           a1          |\n\
         | filename | events_2015_04_22.dat |\n\
         +----------+-----------------------+\n"
    );
}

#[test]
fn archives_get_writes_bytes() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let reply = Reply {
        status: "200 OK",
        content_type: "application/octet-stream",
        body: bytes.clone(),
    };
    let server = Server::start(vec![reply.clone(), reply]);

    let mut out = Vec::new();
    klugman::run([server.url.as_str(), "archives", "--get", "a1"], &mut out).unwrap();
    assert_eq!(out, bytes);

    let dir = std::env::temp_dir().join(format!("klugman-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a1.dat");
    let file_arg = file.to_str().unwrap();
    let (result, out) = run(&[&server.url, "archives", "--get", "a1", "-o", file_arg]);
    result.unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(
        out,
        format!("Saved archive a1 to {file_arg} (200000 bytes)\n")
    );
    assert_eq!(
        server.requests(),
        [
            "GET /v2/archives/a1 HTTP/1.1",
            "GET /v2/archives/a1 HTTP/1.1"
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_download_leaves_no_file() {
    let server = Server::start(vec![json(
        "404 Not Found",
        r#"{"message": "no archive x"}"#,
    )]);
    let dir = std::env::temp_dir().join(format!("klugman-test-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("x.dat");
    let (result, _) = run(&[
        &server.url,
        "archives",
        "--get",
        "x",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(result
        .unwrap_err()
        .to_string()
        .ends_with("404 Not Found: no archive x"));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_goes_to_output() {
    let (result, out) = run(&["http://x", "streams", "--help"]);
    result.unwrap();
    assert!(out.contains("--details"), "{out}");
    assert!(out.contains("--id <stream_id>"), "{out}");
}
