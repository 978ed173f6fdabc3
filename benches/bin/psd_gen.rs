//! Writes a PSD-shaped CSV to stdout: `psd-gen --bytes N [--seed S]`.

use std::io::Write;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let Some(bytes) = arg("--bytes") else {
        eprintln!("usage: psd-gen --bytes N [--seed S]");
        return std::process::ExitCode::from(2);
    };
    let seed = arg("--seed").unwrap_or(1);
    // Generate in 64 MiB pieces so memory stays flat for any size.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let piece = materia_testkit::psd_csv(&materia_testkit::PsdSpec {
        min_bytes: (64 << 20).min(bytes as usize),
        seed,
    });
    let body_start = piece.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut written = 0u64;
    let mut first = true;
    while written < bytes {
        let part = if first {
            &piece[..]
        } else {
            &piece[body_start..]
        };
        first = false;
        if out.write_all(part).is_err() {
            return std::process::ExitCode::from(1);
        }
        written += part.len() as u64;
    }
    match out.flush() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(1),
    }
}
