//! A real PostgreSQL server for tests: a fresh cluster in a temporary directory (`initdb`),
//! served on 127.0.0.1 at a free port (`pg_ctl`), stopped and deleted when dropped. Debian's
//! `postgresql` package provides the binaries; they refuse to run as root, so as root they run
//! as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running PostgreSQL server.
pub struct TestPostgres {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub url: String,
    /// Its port.
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// The newest installed PostgreSQL's `bin` directory.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL binary, as `postgres` when this process is root.
fn run(bin: &Path, program: &str, args: &[&str]) {
    let path = bin.join(program);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    };
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPostgres {
    /// Starts a server. Panics when PostgreSQL is not installed (CI installs it).
    pub fn start() -> Self {
        let bin = bin_dir().expect(
            "PostgreSQL is not installed (apt-get install -y postgresql); the store's PostgreSQL tests need it",
        );
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = dir.path().join("data");
        run(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = super::free_port();
        let pg = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            bin,
            dir,
        };
        pg.start_server();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start_server(&self) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -F -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (connections are cut), keeping its data.
    pub fn stop(&self) {
        run(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the stopped server again on the same port and data.
    pub fn restart(&self) {
        self.start_server();
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}
