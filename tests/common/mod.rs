//! Shared test harness: runs the real `extsecret` binary, makes temporary folders, and starts a
//! real `moto_server` (AWS emulator, `pip install 'moto[server]'`) on a free 127.0.0.1 port.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_extsecret"))
}

/// Repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for the binary with a clean, predictable environment: no inherited `EXTSECRET_*`,
/// `ARGOCD_*` or AWS variables, and IMDS disabled so nothing ever reaches for a link-local address.
pub fn extsecret(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    scrub_env(&mut c);
    c
}

/// Removes the variables a test must set explicitly.
pub fn scrub_env(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("EXTSECRET_")
            || k.starts_with("ARGOCD_")
            || k.starts_with("AWS_")
            || k.starts_with("PARAM_")
            || k.starts_with("KUSTOMIZE_")
        {
            c.env_remove(k);
        }
    }
    c.env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Runs a command with `stdin` (empty when `None`) and returns its output.
pub fn run(mut c: Command, stdin: Option<&[u8]>) -> Output {
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf8 stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstderr:\n{}", o.status.code(), stderr(o));
    stdout(o)
}

/// Asserts a failed render: exit 1, nothing on stdout; returns stderr.
pub fn failed(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1; stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
    assert!(o.stdout.is_empty(), "stdout must be empty on failure, got:\n{}", stdout(o));
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

/// A fresh temporary folder, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Writes `text` to `dir/name` (creating parent folders) and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running moto server, shared by the tests of one test binary (tests isolate themselves by
/// using their own secret names).
pub struct Moto {
    pub url: String,
    _child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self._child.kill();
    }
}

/// The moto server: the one `scripts/test` started (`EXTSECRET_TEST_MOTO_URL`), else one started
/// here (once per test binary) on a free port, under a watchdog that stops it when this test
/// process exits. Tests isolate themselves by using their own secret names.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        if let Some(url) = std::env::var("EXTSECRET_TEST_MOTO_URL").ok().filter(|u| !u.is_empty()) {
            let child = Command::new("true").spawn().unwrap();
            return Moto { url, _child: child };
        }
        let port = free_port();
        let watchdog = format!(
            "import os,subprocess,time\np=subprocess.Popen(['moto_server','-H','127.0.0.1','-p','{port}'],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\nparent=os.getppid()\nwhile os.getppid()==parent and p.poll() is None: time.sleep(0.5)\np.kill()\n"
        );
        let child = Command::new("python3").args(["-c", &watchdog]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("python3");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port} (pip install 'moto[server]'; scripts/test does it)");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { url, _child: child }
    })
}

/// Sets the environment the real AWS SDK needs to reach moto with static keys.
pub fn aws_env(c: &mut Command, moto: &Moto) {
    c.env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
}
