//! The README's five-minute tour, run as written.
//!
//! Every command of the `sh` blocks under the README's tour heading runs in
//! order through `bash -c`, in a fresh directory that holds the repository's
//! sample data at the path a clone has it, with the built `materia` first on
//! the `PATH` and none of this process's `MATERIA_*` settings. Each command
//! must exit 0, and the `# ` lines the README shows under a command must match
//! lines it printed, in order (`…` stands for any text; other lines may come
//! between). The one background command, `materia serve … &`, is started on a
//! port the test picks: the tour's `127.0.0.1:8080` becomes that address in
//! every later command and expected line, and `kill %1` stops the server.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The heading the tour sits under; the tour ends at the next `## ` heading.
const HEADING: &str = "## A five-minute tour";
/// The address the tour's `materia serve` listens on (its default).
const TOUR_ADDR: &str = "127.0.0.1:8080";

/// One command of the tour and the output lines the README shows for it.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tour's commands, from the `sh` blocks of the README's tour section.
fn tour(readme: &str) -> Vec<Step> {
    let section = readme
        .split_once(&format!("\n{HEADING}\n"))
        .unwrap_or_else(|| panic!("README.md has no {HEADING:?} heading"))
        .1;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    let mut continued: Option<String> = None;
    for line in section.lines() {
        if !in_block {
            in_block = line.trim_end() == "```sh";
            continue;
        }
        if line.trim_end() == "```" {
            in_block = false;
            continue;
        }
        if let Some(start) = continued.take() {
            let joined = format!("{start}\n{line}");
            if line.ends_with('\\') {
                continued = Some(joined);
            } else {
                steps.push(Step {
                    command: joined,
                    expected: Vec::new(),
                });
            }
        } else if let Some(shown) = line.strip_prefix("# ") {
            steps
                .last_mut()
                .unwrap_or_else(|| panic!("output {line:?} before any command"))
                .expected
                .push(shown.to_owned());
        } else if line.ends_with('\\') {
            continued = Some(line.to_owned());
        } else if !line.trim().is_empty() {
            steps.push(Step {
                command: line.to_owned(),
                expected: Vec::new(),
            });
        }
    }
    assert!(!in_block, "the tour's last block is not closed");
    steps
}

/// Whether `actual` is the README's `shown` line, `…` standing for any text.
fn line_matches(shown: &str, actual: &str) -> bool {
    let actual = actual.trim_end();
    let pieces: Vec<&str> = shown.trim_end().split('…').collect();
    let [first, middle @ .., last] = pieces.as_slice() else {
        return actual == shown.trim_end();
    };
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Asserts each shown line matches one of `output`'s lines, in order.
fn assert_shown(step: &Step, expected: &[String], output: &str) {
    let mut lines = output.lines();
    for shown in expected {
        assert!(
            lines.any(|actual| line_matches(shown, actual)),
            "`{}`: the README shows {shown:?}, which is not in its output (in this order):\n{output}",
            step.command
        );
    }
}

/// A shell in `dir` with the test's `materia` first on the PATH and the
/// environment a fresh login would have (the test kit's list of settings
/// removed, and the README's defaults for the paths).
fn shell(dir: &Path, command: &str) -> Command {
    let template = crate::materia(&dir.join("data/landing"));
    let mut cmd = Command::new("bash");
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_materia"))
        .parent()
        .expect("the binary's directory");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .env_remove("LANDING_DIR")
        .env_remove("MATERIA_BIND")
        .env_remove("MATERIA_SERVE_MEMORY")
        .arg("-c")
        .arg(command)
        .current_dir(dir);
    cmd
}

/// The tour's background server, stopped when dropped.
struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `command` (`materia serve … &`) on a port of the system's
    /// choosing; returns it with the first line it printed.
    fn start(dir: &Path, command: &str) -> (Server, String) {
        let command = command.trim_end().trim_end_matches('&').trim_end();
        let command = if command.contains(TOUR_ADDR) {
            command.replace(TOUR_ADDR, "127.0.0.1:0")
        } else {
            format!("{command} --bind 127.0.0.1:0")
        };
        let mut child = shell(dir, &format!("exec {command}"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("bash runs");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("read the server's output");
        assert!(!first.is_empty(), "`{command}` printed nothing and exited");
        let server = Server {
            child,
            _stdout: stdout,
        };
        (server, first)
    }

    /// Stops the server as `kill %1` does (SIGTERM); it must exit 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "kill -TERM {pid}");
        let status = self.child.wait().expect("the server exits");
        assert!(status.success(), "materia serve after SIGTERM: {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the repository's sample data to where the tour's `$PWD` paths look.
fn clone_samples(dir: &Path) {
    let data = Path::new("materia-core/tests/data");
    fs::create_dir_all(dir.join(data)).expect("mkdir");
    for entry in fs::read_dir(repo().join(data)).expect("the samples are in the repo") {
        let entry = entry.expect("entry");
        if !entry.file_type().expect("file type").is_file() {
            continue; // e.g. generated-sql/: the tour reads only the samples
        }
        fs::copy(entry.path(), dir.join(data).join(entry.file_name())).expect("copy a sample");
    }
}

#[test]
fn the_readme_tour_runs_as_written() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md");
    let steps = tour(&readme);
    assert!(
        steps.iter().any(|s| s.command.starts_with("materia ")),
        "the tour runs no materia command: {steps:?}"
    );
    if steps.iter().any(|s| s.command.starts_with("curl ")) {
        let curl = Command::new("bash")
            .args(["-c", "command -v curl"])
            .output()
            .expect("bash runs");
        assert!(
            curl.status.success(),
            "the tour uses curl: install it (apt-get install curl)"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    clone_samples(dir.path());
    let mut server: Option<Server> = None;
    let mut addr = TOUR_ADDR.to_owned();
    for step in &steps {
        // The shown lines, with the tour's address replaced by the server's.
        let shown = |addr: &str| -> Vec<String> {
            let with_addr = |line: &String| line.replace(TOUR_ADDR, addr);
            step.expected.iter().map(with_addr).collect()
        };
        let command = step.command.replace(TOUR_ADDR, &addr);
        println!("$ {command}");
        if command.trim_end().ends_with('&') {
            assert!(server.is_none(), "the tour starts one server at a time");
            let (started, first) = Server::start(dir.path(), &command);
            let url = first
                .trim()
                .strip_prefix("listening on http://")
                .unwrap_or_else(|| panic!("`{command}` printed {first:?}"));
            print!("{first}");
            addr = url.to_owned();
            assert_shown(step, &shown(&addr), &first);
            server = Some(started);
        } else if command.trim() == "kill %1" {
            server.take().expect("a server to stop").stop();
        } else {
            let out = shell(dir.path(), &command).output().expect("bash runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            print!("{stdout}");
            if !stdout.is_empty() && !stdout.ends_with('\n') {
                println!();
            }
            assert!(
                out.status.success(),
                "`{command}` failed ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_shown(step, &shown(&addr), &stdout);
        }
    }
    assert!(server.is_none(), "the tour leaves its server running");
}

#[test]
fn shown_lines_match_with_ellipses_only_where_written() {
    assert!(line_matches(
        "1 file(s) checked, … bytes read, 0 bad",
        "1 file(s) checked, 20866 bytes read, 0 bad"
    ));
    assert!(line_matches(
        "landed psd/…",
        "landed psd/2026/12/ab.csv.gzip: 1 bytes in"
    ));
    assert!(line_matches("(2 rows)", "(2 rows)  "));
    assert!(!line_matches("(2 rows)", "(3 rows)"));
    assert!(!line_matches("… 0 bad", "1 file(s) checked, 1 bad"));
    assert!(!line_matches("a…a", "a"));
}
