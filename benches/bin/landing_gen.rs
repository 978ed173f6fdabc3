//! Fills a landing zone with generated PSD releases:
//! `landing-gen --dir DIR --releases N [--bytes-per-release B]` (default 5 MiB,
//! about 50k rows each).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let (Some(dir), Some(Ok(releases))) = (arg("--dir"), arg("--releases").map(|v| v.parse()))
    else {
        eprintln!("usage: landing-gen --dir DIR --releases N [--bytes-per-release B]");
        return std::process::ExitCode::from(2);
    };
    let bytes = arg("--bytes-per-release")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5 << 20);
    match materia_testkit::psd_landing_zone(std::path::Path::new(dir), releases, bytes) {
        Ok(store) => {
            println!("{} releases in {dir}", store.list().len());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("landing-gen: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
