//! Runs a renderer of `argocd generate` (`kustomize build`, `helm template`) with bounded memory:
//! its stdout is read as it comes and the run stops, the child killed, once it passes the bound;
//! of its stderr only the last [`STDERR_TAIL_BYTES`] are kept for the error message.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::problem::Problem;

/// Bytes of a renderer's stderr quoted in its error: the last 4 KiB (where helm and kustomize
/// print their `Error:` line).
pub const STDERR_TAIL_BYTES: usize = 4096;

/// Runs `argv` (no shell, stdin closed) under `timeout` and returns its stdout, at most
/// `max_stdout` bytes. Errors: the command cannot start, does not finish in time, prints more
/// than `max_stdout` bytes (the child is killed at once), or exits non-zero (with the tail of its
/// stderr). `what` names the renderer in messages.
pub async fn run(argv: &[String], what: &str, timeout: Duration, max_stdout: u64) -> Result<Vec<u8>, Problem> {
    let (program, rest) = argv.split_first().ok_or_else(|| Problem::new(format!("empty {what} command")))?;
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Problem::new(format!("cannot run {what} (`{program}`): {e}")))?;
    let (stdout, stderr) = (child.stdout.take().expect("piped stdout"), child.stderr.take().expect("piped stderr"));
    let work = async {
        // The first error (too much output) ends the run without waiting for stderr's end.
        let (out, err_tail) = tokio::try_join!(read_bounded(stdout, what, max_stdout), async { Ok(read_tail(stderr).await) })?;
        let status = child.wait().await.map_err(|e| Problem::new(format!("cannot wait for {what}: {e}")))?;
        Ok::<_, Problem>((status, out, err_tail))
    };
    let result = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| Problem::new(format!("{what} did not finish within {}s (--timeout)", timeout.as_secs_f32())));
    let (status, out, err_tail) = match result.and_then(|r| r) {
        Ok(done) => done,
        Err(p) => {
            let _ = child.start_kill();
            return Err(p);
        }
    };
    if !status.success() {
        return Err(failure(what, status, &err_tail));
    }
    Ok(out)
}

/// The error of a renderer that exited non-zero, quoting the kept tail of its stderr.
fn failure(what: &str, status: ExitStatus, tail: &Tail) -> Problem {
    let text = String::from_utf8_lossy(&tail.bytes);
    let cut = if tail.dropped > 0 {
        format!("[stderr truncated: {} earlier bytes omitted, the last {} KiB follow] ", tail.dropped, STDERR_TAIL_BYTES / 1024)
    } else {
        String::new()
    };
    Problem::new(format!("{what} failed ({status}): {cut}{}", text.trim()))
}

/// Reads `r` to its end, failing as soon as it holds more than `max` bytes.
async fn read_bounded(r: impl AsyncRead + Unpin, what: &str, max: u64) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    r.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .await
        .map_err(|e| Problem::new(format!("cannot read the output of {what}: {e}")))?;
    if out.len() as u64 > max {
        return Err(Problem::new(format!(
            "{what} printed more than {} MiB of manifests; refused (a CMP run is bounded so the sidecar's memory limit holds)",
            max / 1024 / 1024
        )));
    }
    Ok(out)
}

/// The end of a stream: its last bytes and how many came before them.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: u64,
}

/// Reads `r` to its end (a read error ends it), keeping the last [`STDERR_TAIL_BYTES`], cut
/// at a UTF-8 character boundary.
async fn read_tail(mut r: impl AsyncRead + Unpin) -> Tail {
    let mut tail = Tail::default();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tail.bytes.extend_from_slice(&chunk[..n]);
        if tail.bytes.len() > 2 * STDERR_TAIL_BYTES {
            tail.drop_front(tail.bytes.len() - STDERR_TAIL_BYTES);
        }
    }
    if tail.bytes.len() > STDERR_TAIL_BYTES {
        tail.drop_front(tail.bytes.len() - STDERR_TAIL_BYTES);
    }
    if tail.dropped > 0 {
        // Not in the middle of a character: skip continuation bytes.
        let partial = tail.bytes.iter().take(3).take_while(|b| (0x80..0xC0).contains(*b)).count();
        tail.drop_front(partial);
    }
    tail
}

impl Tail {
    fn drop_front(&mut self, n: usize) {
        self.bytes.drain(..n);
        self.dropped += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_tail_keeps_the_last_bytes_on_a_character_boundary() {
        let short = read_tail(&b"Error: short\n"[..]).await;
        assert_eq!((short.bytes.as_slice(), short.dropped), (&b"Error: short\n"[..], 0));
        let mut long = "é".repeat(10_000).into_bytes();
        long.extend_from_slice(b"Error: last line");
        let tail = read_tail(long.as_slice()).await;
        assert!(tail.bytes.len() <= STDERR_TAIL_BYTES && tail.bytes.len() > STDERR_TAIL_BYTES - 4);
        assert_eq!(tail.dropped as usize + tail.bytes.len(), long.len());
        let text = std::str::from_utf8(&tail.bytes).expect("cut on a character boundary");
        assert!(text.ends_with("éError: last line"), "{text}");
    }
}
