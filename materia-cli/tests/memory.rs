//! Peak memory of `materia extract` landing a 1 GiB CSV streamed over HTTP.
//!
//! Its own test binary, so the peak RSS of this process's waited-for children is
//! the extractor's alone.

use std::process::Command;
use std::sync::Arc;

use materia_testkit::http::{Reply, Server};
use nix::sys::resource::{UsageWho, getrusage};

#[test]
fn extract_of_1_gib_stays_under_64_mib_rss() {
    const GIB: u64 = 1 << 30;
    let chunk = Arc::new(materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 4 << 20,
        seed: 42,
    }));
    let server = Server::start(move |_, _| Reply::Stream {
        chunk: chunk.clone(),
        len: GIB,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_materia"))
        .env("LANDING_DIR", dir.path())
        .args(["extract", "--dataset", "psd", "--json", "--url"])
        .arg(server.url("/psd_big.csv"))
        .output()
        .expect("materia runs");
    assert!(out.status.success(), "{out:?}");
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(done["status"], "landed", "{done}");
    assert_eq!(done["bytes_in"], GIB);
    assert_eq!(done["content_bytes"], GIB);

    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    println!(
        "materia extract, 1 GiB CSV over HTTP: peak RSS {} KiB",
        peak_kib
    );
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB is over 64 MiB"
    );
}

#[test]
fn land_with_many_threads_stays_under_64_mib_rss() {
    // Regression: chunks in flight grew with the thread count (2 × threads ×
    // 2 MiB), so a many-core server broke the memory bound.
    use std::io::Write;
    use std::process::Stdio;
    let chunk = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: 4 << 20,
        seed: 7,
    });
    let body = chunk
        .splitn(2, |&b| b == b'\n')
        .nth(1)
        .expect("rows")
        .to_vec();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_materia"))
        .env("LANDING_DIR", dir.path())
        .args([
            "land",
            "--dataset",
            "psd",
            "--threads",
            "64",
            "--level",
            "1",
            "--json",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("materia runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&chunk).expect("header and first rows");
    let mut sent = chunk.len();
    while sent < 256 << 20 {
        stdin.write_all(&body).expect("rows");
        sent += body.len();
    }
    drop(stdin);
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success(), "{out:?}");
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    println!("materia land --threads 64, 256 MiB: peak RSS (max over children) {peak_kib} KiB");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB is over 64 MiB"
    );
}
