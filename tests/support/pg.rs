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
    /// Server settings beyond the address (`-c name=value …`).
    extra: String,
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
        Self::start_with(|_| String::new())
    }

    /// Starts a server that also speaks TLS, with a certificate for 127.0.0.1 signed by a CA
    /// made for it; answers the server and the CA's PEM file.
    pub fn start_with_tls() -> (Self, PathBuf) {
        let mut ca = None;
        let pg = Self::start_with(|dir| {
            let sh = |script: &str| {
                let out = Command::new("sh")
                    .args(["-ec", script])
                    .current_dir(dir)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{script}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=tg-ingest-test-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null");
            sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null");
            sh("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext");
            sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null");
            sh("chmod 600 server.key");
            if is_root() {
                sh("chown postgres:postgres server.key server.pem");
            }
            ca = Some(dir.join("ca.pem"));
            format!(
                " -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
                dir.display()
            )
        });
        (pg, ca.unwrap())
    }

    /// Starts a server with the settings `extra` gives for its directory.
    fn start_with(extra: impl FnOnce(&Path) -> String) -> Self {
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
        let extra = extra(dir.path());
        let pg = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            bin,
            dir,
            extra,
        };
        pg.start_server();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start_server(&self) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -F -c max_connections=200{}",
            self.port,
            self.dir.path().display(),
            self.extra
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
