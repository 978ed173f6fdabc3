//! I/O faults a kill cannot produce, injected into the real binary with libfiu's
//! `fiu-run` (Debian `fiu-utils`: LD_PRELOAD errno injection into POSIX I/O):
//! failing fsyncs and writes that fail with ENOSPC part way through a file.
//! Each must end in a clear error, no partial file under a final name, no temp
//! file left behind, and a store that verifies.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use materia_core::landing::LandingStore;

/// `fiu-run`; a test that needs it fails when it is not installed.
fn fiu_run() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("fiu-run"))
                .find(|p| p.is_file())
        })
        .expect("FAULT TESTS CANNOT RUN: fiu-run not found; install it with `apt-get install fiu-utils`")
}

use crate::materia;

/// `materia args…` under `fiu-run -x` with the given `-c` commands.
fn under_fiu(fiu: &Path, landing: &Path, faults: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new(fiu);
    cmd.arg("-x");
    for f in faults {
        cmd.args(["-c", f]);
    }
    cmd.arg(env!("CARGO_BIN_EXE_materia"))
        .args(args)
        .env("LANDING_DIR", landing)
        .env_remove("MATERIA_LOG")
        .output()
        .expect("fiu-run runs")
}

/// Every file under `dir` (recursively), relative names.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .expect("under")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

fn landed_files(landing: &Path) -> Vec<String> {
    files_under(landing)
        .into_iter()
        .filter(|f| !f.starts_with(".materia"))
        .collect()
}

fn csv(bytes: usize, seed: u64) -> Vec<u8> {
    materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: bytes,
        seed,
    })
}

#[test]
fn a_failed_fsync_fails_the_land_and_publishes_nothing() {
    let fiu = fiu_run();
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    LandingStore::open(&landing).expect("the store exists before the faults");
    let input = dir.path().join("psd.csv");
    fs::write(&input, csv(3 << 20, 1)).expect("input");
    let input = input.to_str().expect("utf-8");
    let land = ["land", "--dataset", "psd", "--etag", "e1", input];
    // A first release makes the month's directory, so that under the fault the
    // first fsync is the new file's own (a new directory's parent comes first
    // otherwise: also refused, naming that directory).
    let warm = dir.path().join("warm.csv");
    fs::write(&warm, csv(10_000, 2)).expect("input");
    let out = materia(&landing)
        .args(["land", "--dataset", "psd", "--etag", "e0"])
        .arg(&warm)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let before = landed_files(&landing);

    // Every fsync fails: the first is the new file's own, before its rename.
    let out = under_fiu(
        &fiu,
        &landing,
        &["enable name=posix/io/sync/fsync,failinfo=5"],
        &land,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("I/O error on") && err.contains(".tmp.") && err.contains("Input/output error"),
        "a clear error naming the temp file: {err}"
    );
    assert_eq!(
        landed_files(&landing),
        before,
        "nothing new under a final name: {:?}",
        files_under(&landing)
    );
    // No temp file survives: the failed writer removed its own.
    assert!(
        !files_under(&landing).iter().any(|f| f.contains(".tmp.")),
        "{:?}",
        files_under(&landing)
    );
    // The data is fetched (here: read) again, not the fsync retried.
    let ok = materia(&landing).args(land).output().expect("runs");
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(landed_files(&landing).len(), 2);

    // The ledger's fdatasync fails: the record comes before the rename, so the
    // file (complete and synced) is never moved into place; the error names the
    // ledger, and a clean rerun lands it.
    let other = dir.path().join("other.csv");
    fs::write(&other, csv(10_000, 3)).expect("input");
    let out = under_fiu(
        &fiu,
        &landing,
        &["enable name=posix/io/sync/fdatasync,failinfo=5"],
        &[
            "land",
            "--dataset",
            "psd",
            "--etag",
            "e2",
            other.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("ledger.jsonl"), "{err}");
    assert_eq!(
        landed_files(&landing).len(),
        2,
        "{:?}",
        files_under(&landing)
    );
    let again = materia(&landing)
        .args(["land", "--dataset", "psd", "--etag", "e2"])
        .arg(&other)
        .output()
        .expect("runs");
    assert!(again.status.success(), "{again:?}");
    let store = LandingStore::open(&landing).expect("open");
    assert!(store.verify().expect("verify").is_ok());
    assert_eq!(store.list().len(), 3);
}

#[test]
fn writes_failing_with_enospc_part_way_never_leave_a_partial_file() {
    let fiu = fiu_run();
    let dir = tempfile::tempdir().expect("tempdir");
    let landing = dir.path().join("landing");
    LandingStore::open(&landing).expect("open");
    let runs = 40;
    let (mut failed, mut landed) = (0, 0);
    for i in 0..runs {
        let input = dir.path().join(format!("in-{i}.csv"));
        fs::write(&input, csv(1 << 20, 100 + i)).expect("input");
        let etag = format!("e{i}");
        // About one write in 10 fails with ENOSPC (errno 28): some runs fail
        // mid-file, some at the ledger, some not at all.
        let out = under_fiu(
            &fiu,
            &landing,
            &["enable_random name=posix/io/rw/write,probability=0.1,failinfo=28"],
            &[
                "land",
                "--dataset",
                "psd",
                "--etag",
                &etag,
                "--level",
                "1",
                input.to_str().expect("utf-8"),
            ],
        );
        match out.status.code() {
            Some(0) => landed += 1,
            Some(2) => failed += 1,
            other => panic!("run {i}: exit {other:?} (a panic or a signal?): {out:?}"),
        }
    }
    println!("ENOSPC injection: {failed} of {runs} lands failed, {landed} succeeded");
    assert!(failed > 0, "the fault fired");
    let files = files_under(&landing);
    assert!(
        !files.iter().any(|f| f.contains(".tmp.")),
        "no temp file left: {files:?}"
    );
    // Whatever is visible is complete: every landed file verifies end to end.
    let store = LandingStore::open(&landing).expect("open");
    let report = store.verify().expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert!(store.list().len() >= landed, "every success is there");
}
