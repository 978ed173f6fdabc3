//! Power cuts at every sync boundary, on the `crashfs` FUSE filesystem.
//!
//! Each scenario runs an operation once to count its syncs (N), then N more
//! times on a fresh copy of the starting image, losing power right after the
//! k-th sync (k = 1..N). The image that survives is mounted alone and every
//! promise of the README's Guarantees is checked on it: the store opens and
//! verifies (no partial file under a final name, every file has its ledger
//! record), nothing landed before is lost, the lakehouse is the old build or
//! the new one, the state file is old or new, and after the last sync the
//! operation's result is there. Then the next run of the same command succeeds
//! on the survivor (a power cut never wedges the pipeline).

use std::path::Path;
use std::process::{Command, Stdio};

use materia_core::landing::LandingStore;
use materia_core::supervise::State;

use super::crashfs::{CrashFs, Image, Mounted};
use super::{materia, releases_published};

/// Fails loudly when FUSE is not usable here: a missing tool never passes.
fn mount(fs: CrashFs, dir: &Path) -> Mounted {
    assert!(
        Path::new("/dev/fuse").exists(),
        "POWER-CUT TESTS CANNOT RUN: /dev/fuse is missing (FUSE is needed: Debian `fuse3`)"
    );
    fs.mount(dir).unwrap_or_else(|e| {
        panic!(
            "POWER-CUT TESTS CANNOT RUN: mounting the crashfs FUSE filesystem at {} failed: {e} \
             (needs /dev/fuse and the right to mount: root, or Debian `fuse3`'s fusermount3)",
            dir.display()
        )
    })
}

/// Runs `op` on an image made by `setup`, cut at every sync; `check` gets the
/// surviving tree and whether the cut came after the last sync. Returns N.
fn power_cuts(
    name: &str,
    setup: impl Fn(&Path),
    op: impl Fn(&Path),
    check: impl Fn(&Path, bool, u64),
) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mountpoint");
    let initial: Image = {
        let mounted = mount(CrashFs::new(Image::default(), None), &mnt);
        setup(&mnt);
        mounted.fs.settle()
    };
    let syncs = {
        let mounted = mount(CrashFs::new(initial.clone(), None), &mnt);
        op(&mnt);
        mounted.fs.syncs()
    };
    assert!(syncs > 0, "{name}: the operation never synced anything");
    for k in 1..=syncs {
        let survivor = {
            let mounted = mount(CrashFs::new(initial.clone(), Some(k)), &mnt);
            op(&mnt);
            mounted.fs.crashed()
        };
        let survivor =
            survivor.unwrap_or_else(|| panic!("{name}: the run made fewer than {k} syncs"));
        let _mounted = mount(CrashFs::new(survivor, None), &mnt);
        check(&mnt, k == syncs, k);
    }
    println!("{name}: {syncs} power cuts, one after each sync");
    syncs
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("materia runs");
    assert!(out.status.success(), "{what}: {out:?}");
}

fn csv(dir: &Path, k: u64) -> std::path::PathBuf {
    let path = dir.join(format!("release-{k}.csv"));
    if !path.exists() {
        let body = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
            min_bytes: 200_000,
            seed: k,
        });
        std::fs::write(&path, body).expect("input");
    }
    path
}

fn land(landing: &Path, input: &Path, etag: &str) -> Command {
    let mut cmd = materia(landing);
    cmd.args([
        "land",
        "--dataset",
        "psd",
        "--year",
        "2026",
        "--month",
        "11",
        "--etag",
        etag,
    ])
    .arg(input);
    cmd
}

/// The store opens on the survivor, verifies, and every file has its record.
fn check_store(landing: &Path, what: &str) -> LandingStore {
    let store = LandingStore::open(landing).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let report = store.verify().expect("verify");
    assert!(report.is_ok(), "{what}: {report:?}");
    assert!(report.unrecorded.is_empty(), "{what}: {report:?}");
    store
}

#[test]
fn land_survives_a_power_cut_at_every_sync() {
    let inputs = tempfile::tempdir().expect("inputs");
    let (one, two) = (csv(inputs.path(), 1), csv(inputs.path(), 2));
    let cuts = power_cuts(
        "land",
        |mnt| run(&mut land(&mnt.join("landing"), &one, "e1"), "setup"),
        |mnt| {
            let _ = land(&mnt.join("landing"), &two, "e2").status();
        },
        |mnt, last, k| {
            let what = format!("land, cut {k}");
            let store = check_store(&mnt.join("landing"), &what);
            let psd = "psd".parse().expect("valid");
            assert!(
                store.contains(&psd, &"e1".parse().expect("valid")),
                "{what}: e1 lost"
            );
            let has_two = store.contains(&psd, &"e2".parse().expect("valid"));
            assert!(has_two || !last, "{what}: acknowledged but lost");
            // The next land after the cut completes.
            run(&mut land(&mnt.join("landing"), &two, "e2"), &what);
            assert!(
                LandingStore::open(mnt.join("landing"))
                    .expect("open")
                    .contains(&psd, &"e2".parse().expect("valid"))
            );
        },
    );
    // The staged file, the ledger record, the directory entry.
    assert!(cuts >= 3, "{cuts}");
}

#[test]
fn transform_publish_survives_a_power_cut_at_every_sync() {
    let inputs = tempfile::tempdir().expect("inputs");
    let (one, two, three) = (
        csv(inputs.path(), 1),
        csv(inputs.path(), 2),
        csv(inputs.path(), 3),
    );
    let transform = |mnt: &Path| {
        let mut cmd = materia(&mnt.join("landing"));
        cmd.env("DUCKDB_PATH", mnt.join("lake/lakehouse.duckdb"))
            .arg("transform");
        cmd
    };
    // Two builds fill both slots: the third updates the first build's slot in
    // place, the path a daily build takes.
    let cuts = power_cuts(
        "transform",
        |mnt| {
            run(&mut land(&mnt.join("landing"), &one, "e1"), "setup land");
            run(&mut transform(mnt), "setup transform");
            run(&mut land(&mnt.join("landing"), &two, "e2"), "setup land 2");
            run(&mut transform(mnt), "setup transform 2");
            run(
                &mut land(&mnt.join("landing"), &three, "e3"),
                "setup land 3",
            );
        },
        |mnt| {
            let _ = transform(mnt).status();
        },
        |mnt, last, k| {
            let what = format!("transform, cut {k}");
            check_store(&mnt.join("landing"), &what);
            let n = releases_published(&mnt.join("lake/lakehouse.duckdb"));
            assert!(n == 2 || n == 3, "{what}: {n} releases published");
            assert!(n == 3 || !last, "{what}: the published build was lost");
            run(&mut transform(mnt), &what);
            assert_eq!(
                releases_published(&mnt.join("lake/lakehouse.duckdb")),
                3,
                "{what}"
            );
        },
    );
    assert!(cuts >= 2, "{cuts}");
}

#[test]
fn the_state_file_survives_a_power_cut_at_every_sync() {
    let inputs = tempfile::tempdir().expect("inputs");
    let one = csv(inputs.path(), 1);
    let cycle = |mnt: &Path| {
        let mut cmd = materia(&mnt.join("landing"));
        cmd.env("DUCKDB_PATH", mnt.join("lake/lakehouse.duckdb"))
            .args(["run", "--steps", "transform"]);
        cmd
    };
    let cuts = power_cuts(
        "state",
        |mnt| run(&mut land(&mnt.join("landing"), &one, "e1"), "setup"),
        |mnt| {
            let _ = cycle(mnt).status();
        },
        |mnt, last, k| {
            let what = format!("state, cut {k}");
            check_store(&mnt.join("landing"), &what);
            let state = State::load(mnt.join("landing")).unwrap_or_else(|e| panic!("{what}: {e}"));
            if last {
                assert!(state.steps.contains_key("transform"), "{what}: {state:?}");
            }
            let n = releases_published(&mnt.join("lake/lakehouse.duckdb"));
            assert!(n == 0 || n == 1, "{what}: {n}");
            run(&mut cycle(mnt), &what);
        },
    );
    assert!(cuts >= 2, "{cuts}");
}

#[cfg(feature = "s3")]
#[test]
fn the_mirror_record_survives_a_power_cut_at_every_sync() {
    use super::s3::S3Server;
    const BUCKET: &str = "materia-raw";
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let inputs = tempfile::tempdir().expect("inputs");
    let (one, two) = (csv(inputs.path(), 1), csv(inputs.path(), 2));
    let mirror = |mnt: &Path, prefix: &str| {
        let mut cmd = materia(&mnt.join("landing"));
        cmd.args([
            "mirror",
            "--multipart-threshold-mib",
            "0",
            "--part-size-mib",
            "5",
        ]);
        let url = format!("s3://{BUCKET}/{prefix}");
        crate::with_s3(&mut cmd, &url, &server.endpoint, "test-secret");
        cmd
    };
    // Each run pushes to a prefix of its own, so that every cut starts from an
    // empty bucket prefix and has real uploads (multipart: pending records) to do.
    let run_no = std::sync::atomic::AtomicU64::new(0);
    let prefix = std::sync::Mutex::new(String::new());
    let cuts = power_cuts(
        "mirror",
        |mnt| {
            run(&mut land(&mnt.join("landing"), &one, "e1"), "setup");
            run(&mut land(&mnt.join("landing"), &two, "e2"), "setup");
        },
        |mnt| {
            let n = run_no.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = format!("run{n}");
            let _ = mirror(mnt, &p).status();
            *prefix.lock().expect("prefix") = p;
        },
        |mnt, _last, k| {
            let what = format!("mirror, cut {k}");
            check_store(&mnt.join("landing"), &what);
            let p = prefix.lock().expect("prefix").clone();
            // The next push finishes the job: every file there, byte for byte,
            // and no multipart upload left behind.
            run(&mut mirror(mnt, &p), &what);
            let mut verify = mirror(mnt, &p);
            verify.arg("--verify");
            run(&mut verify, &what);
            assert_eq!(server.list_raw(BUCKET, &p).len(), 2, "{what}");
            assert_eq!(
                server.multipart_uploads(BUCKET),
                0,
                "{what}: an orphaned upload"
            );
        },
    );
    assert!(cuts >= 2, "{cuts}");
}
