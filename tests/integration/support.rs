//! Helpers: a throwaway data directory, the CLI, openssl and pkilint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cloudpki");

/// Repository root (for tests/tools/lint.py).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A data directory plus a scratch area, removed when dropped.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.data_dir());
        c.env_remove("CLOUDPKI_KEK")
            .env_remove("CLOUDPKI_PUBLIC_URL")
            .env_remove("CLOUDPKI_DATA_DIR");
        c
    }

    /// Runs the CLI; returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run cloudpki")
    }

    /// Runs the CLI with `--json`, expecting success; returns the parsed JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self
            .command()
            .arg("--json")
            .args(args)
            .output()
            .expect("run cloudpki");
        assert!(
            out.status.success(),
            "cloudpki {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "cloudpki {args:?}: bad JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs the CLI expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "cloudpki {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes stdout of a successful CLI run to a file.
    pub fn save(&self, args: &[&str], name: &str) -> PathBuf {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cloudpki {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p = self.path(name);
        std::fs::write(&p, &out.stdout).expect("write");
        p
    }

    pub fn create_ca(&self, extra: &[&str]) -> Value {
        let mut args = vec!["ca", "create"];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// Makes a key and a CSR with openssl; returns the CSR path.
    pub fn openssl_csr(&self, name: &str, key_args: &[&str], subject: &str) -> PathBuf {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let mut args = vec!["req", "-new", "-nodes", "-newkey"];
        args.extend_from_slice(key_args);
        let (k, c) = (
            key.to_str().unwrap().to_owned(),
            csr.to_str().unwrap().to_owned(),
        );
        args.extend_from_slice(&["-keyout", &k, "-subj", subject, "-out", &c]);
        openssl(&args);
        csr
    }
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Runs openssl, expecting success; returns stdout.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify` of `leaf` against `root` with `untrusted` intermediates.
pub fn openssl_verify(root: &Path, untrusted: &Path, leaf: &Path) {
    let out = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        untrusted.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(out.trim_end().ends_with(": OK"), "openssl verify: {out}");
}

/// pkilint through tests/tools/lint.py; fails the test on any ERROR/FATAL
/// finding or if pkilint is missing.
pub fn pkilint(kind: &str, files: &[PathBuf]) {
    let out = Command::new("python3")
        .arg(repo().join("tests/tools/lint.py"))
        .arg(kind)
        .args(files)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pkilint {kind} reported errors (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
