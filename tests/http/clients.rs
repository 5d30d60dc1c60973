//! Real clients — curl and Python's `http.client` — and what the command prints: the listening line,
//! the access log in common log format (and `--quiet`), usage errors.

use std::process::Command;

use crate::support::{Server, Site, big_content, curl, python, sha256};

#[test]
fn curl_reuses_one_connection_and_gets_every_file() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let output = curl(&[
        "--verbose",
        "--output",
        "/dev/null",
        "--output",
        "/dev/null",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{size_download}\n",
        &server.url("/a.txt"),
        &server.url("/big.bin"),
        &server.url("/missing"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout, "200 6\n200 262144\n404 106\n", "{stderr}");
    assert!(
        stderr.contains("Re-using existing connection") || stderr.contains("Reusing existing"),
        "curl kept the connection alive: {stderr}"
    );
}

#[test]
fn curl_ranges_head_http_1_0_and_redirects() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let range = curl(&["--range", "10-19", &server.url("/big.bin")]);
    assert_eq!(range.stdout, &big_content()[10..20]);
    let head = curl(&["--head", &server.url("/big.bin")]);
    let text = String::from_utf8_lossy(&head.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: 262144\r\n"), "{text}");
    let old = curl(&["--http1.0", &server.url("/a.txt")]);
    assert_eq!(old.stdout, b"hello\n");
    let followed = curl(&["--location", &server.url("/sub")]);
    assert_eq!(followed.stdout, b"<h1>sub</h1>\n");
    let temp = tempfile::tempdir().unwrap();
    let saved = temp.path().join("big.bin");
    curl(&["--output", saved.to_str().unwrap(), &server.url("/big.bin")]);
    assert_eq!(std::fs::read(&saved).unwrap(), big_content());
}

const PYTHON_CLIENT: &str = r#"
import hashlib, http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
results = []
for path in ["/a.txt", "/big.bin", "/missing", "/limit.bin"]:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    results.append(f"{path} {response.status} {len(body)} {hashlib.sha256(body).hexdigest()}")
conn.request("GET", "/a.txt")
first = conn.getresponse()
first.read()
conn.request("GET", "/a.txt", headers={"If-None-Match": first.getheader("ETag")})
second = conn.getresponse()
second.read()
results.append(f"conditional {second.status}")
conn.request("HEAD", "/big.bin")
head = conn.getresponse()
head.read()
results.append(f"head {head.status} {head.getheader('Content-Length')}")
# One connection throughout: the socket object never changed.
results.append(f"sock {conn.sock is not None}")
print("\n".join(results))
"#;

#[test]
fn python_http_client_keeps_alive_through_every_kind_of_response() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let output = python(PYTHON_CLIENT, &[&server.address.port().to_string()]);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[0], format!("/a.txt 200 6 {}", sha256(b"hello\n")));
    assert_eq!(
        lines[1],
        format!("/big.bin 200 262144 {}", sha256(&big_content()))
    );
    assert!(lines[2].starts_with("/missing 404 "), "{}", lines[2]);
    assert!(
        lines[3].starts_with("/limit.bin 200 65536 "),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "conditional 304");
    assert_eq!(lines[5], "head 200 262144");
    assert_eq!(lines[6], "sock True");
}

#[test]
fn the_first_line_names_address_backend_and_workers() {
    let site = Site::new();
    for (flags, backend, workers) in [
        (&["--backend", "poll"][..], "poll", "1"),
        (&["--backend", "auto", "--workers", "2"][..], "epoll", "2"),
        (&["--bind", "::1"][..], "epoll", "1"),
    ] {
        let server = Server::start(&site.root(), flags);
        let expected = format!(
            "iomux http: listening on http://{}/ (backend {backend}, workers {workers})",
            server.address
        );
        assert_eq!(server.first_line, expected);
        assert_eq!(server.connect().get("/a.txt", &[]).status, 200, "{flags:?}");
    }
}

#[test]
fn the_access_log_is_in_common_log_format_and_quiet_turns_it_off() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    client.get("/a.txt?q=1", &[]);
    client.get("/missing", &[]);
    let line = server.wait_for_log("/missing");
    let first = server.wait_for_log("/a.txt");
    let (host, rest) = first.split_once(" - - [").unwrap();
    assert_eq!(host, "127.0.0.1");
    let (date, rest) = rest.split_once("] ").unwrap();
    assert_eq!(date.len(), 26, "{date}");
    assert!(date.ends_with(" +0000"), "{date}");
    assert_eq!(rest, "\"GET /a.txt?q=1 HTTP/1.1\" 200 6");
    assert!(
        line.ends_with("\"GET /missing HTTP/1.1\" 404 106"),
        "{line}"
    );

    let quiet = Server::start(&site.root(), &["--quiet"]);
    let mut client = quiet.connect();
    for _ in 0..3 {
        assert_eq!(client.get("/a.txt", &[]).status, 200);
    }
    client.get("/a.txt", &["Connection: close"]);
    client.expect_closed();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(quiet.log().is_empty(), "{:?}", quiet.log());
}

#[test]
fn usage_and_setup_errors_exit_2_and_1() {
    let iomux = env!("CARGO_BIN_EXE_iomux");
    for args in [
        &["http", "--backend", "kqueue"][..],
        &["http", "--port", "70000"],
        &["http", "--header-timeout", "0"],
        &["http", "--max-connections", "0"],
        &["http", "--bogus"],
    ] {
        let output = Command::new(iomux).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    let output = Command::new(iomux)
        .args(["http", "/nonexistent/iomux-root", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("iomux: "), "{stderr}");
    assert!(stderr.contains("/nonexistent/iomux-root"), "{stderr}");
    assert!(output.stdout.is_empty());

    // A port already taken: the cause chain names the address.
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let output = Command::new(iomux)
        .arg("http")
        .arg(site.root())
        .args(["--port", &server.address.port().to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&server.address.to_string()), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
}
