//! A real S3-compatible server for tests: moto's standalone server (tests/s3/requirements.txt,
//! installed by `scripts/test` into tests/s3/.venv, else `moto_server` on the PATH), on a
//! port the server picks itself, stopped when dropped. Also compiled into the unit tests of
//! src/objects.rs, so it uses the standard library only.
//!
//! Without moto a test says so and passes, unless VOXBRIDGE_REQUIRE_S3=1 (scripts/test sets
//! it once it has installed moto).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The access key pair the tests sign with (moto accepts any).
pub const ACCESS_KEY_ID: &str = "AKIDVOXBRIDGETEST";
pub const SECRET_ACCESS_KEY: &str = "voxbridge-test-secret-key";

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    child: Child,
}

impl S3Server {
    /// Starts a server, or `None` (after saying why) when moto is not installed.
    pub fn start() -> Option<S3Server> {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/s3/.venv/bin/moto_server");
        let program = if venv.is_file() { venv.clone() } else { PathBuf::from("moto_server") };
        // Port 0: the server binds a free port itself and prints it, so no port can be taken
        // between choosing and binding.
        let spawned = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("VOXBRIDGE_REQUIRE_S3").as_deref() != Ok("1"),
                    "the S3 tests need moto's server ({e}): python3 -m venv {0} && {0}/bin/pip install -r {1}",
                    venv.parent().and_then(|p| p.parent()).unwrap().display(),
                    venv.ancestors().nth(3).unwrap().join("requirements.txt").display(),
                );
                eprintln!(
                    "skipped: no moto_server in {} or on the PATH (scripts/test installs it)",
                    venv.display()
                );
                return None;
            }
        };
        // The log goes on after the address line; it is drained so the server never blocks
        // on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("Running on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto_server did not say where it listens within 60 s");
            }
        };
        Some(S3Server { endpoint: format!("http://{addr}"), child })
    }

    /// Creates a bucket (moto needs no signature for it).
    pub fn create_bucket(&self, name: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut conn = TcpStream::connect(addr).expect("moto_server accepts connections");
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            conn,
            "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "creating the bucket {name}: {response}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
